"""The form a clinic user fills to share a study."""

import secrets

from django import forms
from django.conf import settings

from archive.sharing.models import Share
from archive.sharing.services import ACCESS_CODE_MIN


def new_access_code() -> str:
    """Eight digits: easy to read out on the phone, 10^8 guesses behind a lockout."""
    return f"{secrets.randbelow(10**8):08d}"


class ShareForm(forms.Form):
    nonce = forms.CharField(widget=forms.HiddenInput, max_length=64, required=False,
                            initial=lambda: secrets.token_hex(16))
    scope = forms.ChoiceField(choices=[("study", "This study"), ("patient", "All of this patient's studies")],
                              initial="study", widget=forms.RadioSelect, label="Share")
    expires_in_days = forms.IntegerField(min_value=1, label="Expires after (days)",
                                         initial=lambda: settings.SHARE_DEFAULT_DAYS)
    access = forms.ChoiceField(choices=Share.ACCESS_CHOICES, initial=Share.CODE, widget=forms.RadioSelect,
                               label="Access check")
    access_code = forms.CharField(required=False, max_length=64, label="Access code",
                                  help_text=f"At least {ACCESS_CODE_MIN} characters; leave empty to have one "
                                            "made for you. Give it to the recipient another way than the link "
                                            "(phone, text message).")
    allow_download = forms.BooleanField(required=False, label="Allow downloading the images")
    deidentify = forms.BooleanField(required=False, label="De-identify (second opinion, teaching)",
                                    help_text="Names, IDs, dates, descriptions and UIDs are replaced or left out "
                                              "(DICOM PS3.15 Basic Profile). Text burned into the pixels stays: "
                                              "you are warned when the images may have some.")
    recipient_name = forms.CharField(required=False, max_length=200, label="Recipient's name")
    recipient_email = forms.EmailField(required=False, label="Recipient's email",
                                       help_text="The link is emailed there; the access code is not.")
    message = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3}),
                              label="Message")

    def __init__(self, *args, study=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["expires_in_days"].max_value = settings.SHARE_MAX_DAYS
        self.fields["expires_in_days"].validators.append(
            forms.IntegerField(max_value=settings.SHARE_MAX_DAYS).validators[-1])
        self.study = study

    def clean(self):
        data = super().clean()
        if data.get("access") == Share.CODE:
            code = data.get("access_code") or new_access_code()
            if len(code) < ACCESS_CODE_MIN:
                self.add_error("access_code", f"At least {ACCESS_CODE_MIN} characters.")
            data["access_code"] = code
        if data.get("access") == Share.BIRTH_DATE and data.get("deidentify"):
            self.add_error("access", "A de-identified share cannot ask for the birth date: choose an access code.")
        if data.get("access") == Share.BIRTH_DATE and self.study is not None and not self.study.patient_birth_date:
            self.add_error("access", "This study has no birth date to check: choose an access code.")
        return data
