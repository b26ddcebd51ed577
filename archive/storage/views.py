"""The clinic's storage page: lossless compression (opt-in) and what it saved."""

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from archive.storage.compression import SYNTAXES, compression_summary, policy_get, policy_set
from tenants.decorators import require_perm


class CompressionForm(forms.Form):
    syntax = forms.ChoiceField(
        label="Lossless compression", required=False,
        choices=[("", "Off: store pixel data as received")] + [(uid, name) for uid, name in SYNTAXES.items()],
        help_text="Images received uncompressed are re-encoded after both regions hold them; every "
                  "pixel is checked to decode exactly as received before the compressed copy replaces "
                  "the original. Images received compressed are never touched, and nothing is ever "
                  "encoded lossily.")


@require_perm("tenant.manage_settings")
def storage_settings(request: HttpRequest) -> HttpResponse:
    policy = policy_get(tenant=request.tenant)
    form = CompressionForm(request.POST or None, initial={"syntax": policy.syntax})
    if request.method == "POST" and form.is_valid():
        syntax = form.cleaned_data["syntax"]
        if policy_set(tenant=request.tenant, syntax=syntax, actor=request.principal.actor(request)):
            messages.success(request, f"Lossless compression: {SYNTAXES.get(syntax, 'off')}. New images follow "
                                      "this setting; images already stored are re-encoded by "
                                      "`manage.py compress_backlog`.")
        return redirect("archive:storage_settings", tenant_slug=request.tenant.slug)
    return render(request, "archive/storage_settings.html", {
        "form": form, "policy": policy, "summary": compression_summary(tenant=request.tenant)},
        status=400 if request.method == "POST" else 200)
