"""Forms of the retention pages: the clinic's policy and a deletion request."""

from django import forms

YEARS = {"min_value": 1, "max_value": 100}


class RetentionPolicyForm(forms.Form):
    adult_years = forms.IntegerField(label="Adults: years after the study date", **YEARS)
    minor_years = forms.IntegerField(label="Minors: years after the 18th birthday", **YEARS)
    mammography_years = forms.IntegerField(label="Mammography (MG): years after the study date", **YEARS)


class DeletionRequestForm(forms.Form):
    reason = forms.CharField(max_length=1000, widget=forms.Textarea(attrs={"rows": 3}),
                             help_text="Why this study must be deleted (kept with the tombstone).")
    override_retention = forms.BooleanField(
        required=False, label="Override retention",
        help_text="Required when the study is still within its retention period; the request is flagged.")
