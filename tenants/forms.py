"""Forms for logging in, two-factor codes, invitations, members, API tokens and clinic settings."""

import secrets

from django import forms
from django.contrib.auth import password_validation

from tenants import roles
from tenants.models import Tenant, User, validate_ae_title


class LoginForm(forms.Form):
    email = forms.EmailField(max_length=254, widget=forms.EmailInput(
        attrs={"autocomplete": "username", "autofocus": True}))
    password = forms.CharField(max_length=4096, strip=False, widget=forms.PasswordInput(
        attrs={"autocomplete": "current-password"}))


class OtpCodeForm(forms.Form):
    code = forms.CharField(max_length=32, label="Code", widget=forms.TextInput(
        attrs={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True,
               "autocapitalize": "off", "spellcheck": "false"}))

    def clean_code(self) -> str:
        # People type codes with spaces or dashes in them ("123 456").
        code = "".join(ch for ch in self.cleaned_data["code"] if ch.isalnum()).lower()
        if not code:
            raise forms.ValidationError("Enter the code.")
        return code


class NewPasswordMixin(forms.Form):
    """Two password fields checked against the project's password validators."""

    password1 = forms.CharField(label="Password", strip=False, max_length=4096,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    password2 = forms.CharField(label="Password again", strip=False, max_length=4096,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def password_user(self) -> User | None:
        return None

    def clean(self):
        cleaned = super().clean()
        p1, p2 = cleaned.get("password1"), cleaned.get("password2")
        if p1 and p2:
            if p1 != p2:
                self.add_error("password2", "The two passwords differ.")
            else:
                try:
                    password_validation.validate_password(p1, self.password_user())
                except forms.ValidationError as exc:
                    self.add_error("password1", exc)
        return cleaned


class SignupForm(NewPasswordMixin):
    """A new person joining through an invitation: the email is the invitation's."""

    full_name = forms.CharField(max_length=200, label="Your name")
    field_order = ["full_name", "password1", "password2"]

    def __init__(self, *args, email: str, **kwargs):
        self.email = email
        super().__init__(*args, **kwargs)

    def clean_full_name(self) -> str:
        name = self.cleaned_data["full_name"].strip()
        if not name:
            raise forms.ValidationError("Enter your name.")
        return name

    def password_user(self) -> User:
        # Lets the similarity validator compare the password with the email and name.
        return User(email=self.email, full_name=self.cleaned_data.get("full_name", ""))


class InviteForm(forms.Form):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField()

    def __init__(self, *args, grantable: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        labels = dict(roles.ROLE_CHOICES)
        self.fields["role"].choices = [(r, labels[r]) for r in grantable]
        self.fields["role"].initial = roles.VIEWER if roles.VIEWER in grantable else None

    def clean_email(self) -> str:
        return self.cleaned_data["email"].strip().lower()


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=roles.ROLE_CHOICES)


class TokenCreateForm(forms.Form):
    # One per rendered form: a re-sent POST (the browser's reload) carries the same value
    # and must not create a second token.
    form_id = forms.CharField(widget=forms.HiddenInput, max_length=64, required=False,
                              initial=lambda: secrets.token_urlsafe(16))
    name = forms.CharField(max_length=100, label="Name",
                           help_text="What uses it, e.g. 'CT scanner room 2' or 'nightly export'")
    scopes = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple, label="Scopes",
        choices=[(roles.SCOPE_UPLOAD, "upload: send studies (DICOMweb STOW, uploads)"),
                 (roles.SCOPE_READ, "read: search, view and download studies"),
                 (roles.SCOPE_SHARE, "share: create, list and revoke share links")])

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the token a name.")
        return name


class TenantSettingsForm(forms.ModelForm):
    class Meta:
        model = Tenant
        fields = ["name", "ae_title"]
        labels = {"name": "Clinic name", "ae_title": "DICOM AE title"}
        help_texts = {"ae_title": "What modalities call us: 1-16 characters, A-Z 0-9 space _ - ."}

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Enter the clinic's name.")
        return name

    def clean_ae_title(self) -> str:
        # Modalities send AE titles in upper case; accept what people type and store that.
        value = self.cleaned_data["ae_title"].strip().upper()
        validate_ae_title(value)
        return value
