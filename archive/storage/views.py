"""The clinic's storage page: lossless compression and when copies go cold (both opt-in),
and what is stored."""

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from archive.storage.classes import cold_class
from archive.storage.compression import SYNTAXES, compression_summary
from archive.storage.policy import policy_get, policy_update
from tenants.decorators import require_perm


class StoragePolicyForm(forms.Form):
    compression_syntax = forms.ChoiceField(
        label="Lossless compression", required=False,
        choices=[("", "Off: store pixel data as received")] + [(uid, name) for uid, name in SYNTAXES.items()],
        help_text="Images received uncompressed are re-encoded after both regions hold them; every "
                  "pixel is checked to decode exactly as received before the compressed copy replaces "
                  "the original. Images received compressed are never touched, and nothing is ever "
                  "encoded lossily.")
    cold_after_days = forms.IntegerField(
        label="Move copies to the colder storage class after (days)", required=False, min_value=30,
        max_value=36500, help_text="Empty: never. Colder copies cost less to keep and stay instantly "
                                   "readable; the provider may charge a little more per read.")


@require_perm("tenant.manage_settings")
def storage_settings(request: HttpRequest) -> HttpResponse:
    policy = policy_get(tenant=request.tenant)
    form = StoragePolicyForm(request.POST or None, initial={"compression_syntax": policy.compression_syntax,
                                                           "cold_after_days": policy.cold_after_days})
    if request.method == "POST" and form.is_valid():
        if policy_update(tenant=request.tenant, actor=request.principal.actor(request), **form.cleaned_data):
            messages.success(request, "Storage settings saved. New images follow them; images already stored "
                                      "are re-encoded by `manage.py compress_backlog`.")
        return redirect("archive:storage_settings", tenant_slug=request.tenant.slug)
    return render(request, "archive/storage_settings.html", {
        "form": form, "policy": policy, "summary": compression_summary(tenant=request.tenant),
        "cold_class": cold_class()}, status=400 if request.method == "POST" else 200)
