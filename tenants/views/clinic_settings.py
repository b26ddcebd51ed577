"""A clinic's settings page: name and DICOM AE title."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from tenants.decorators import require_perm
from tenants.forms import TenantSettingsForm
from tenants.models import Tenant
from tenants.services import tenant_settings_update


@require_perm("tenant.manage_settings")
def clinic_settings(request: HttpRequest) -> HttpResponse:
    # A fresh copy: validating the form must not change request.tenant (shown in the header).
    form = TenantSettingsForm(request.POST or None, instance=Tenant.objects.get(pk=request.tenant.pk))
    if request.method == "POST" and form.is_valid():
        try:
            changes = tenant_settings_update(tenant=request.tenant, name=form.cleaned_data["name"],
                                             ae_title=form.cleaned_data["ae_title"],
                                             actor=request.principal.actor(request))
        except (IntegrityError, ValidationError):
            # Another clinic took the AE title between the form check and the save.
            form.add_error("ae_title", "Another clinic uses this AE title.")
        else:
            if changes:
                messages.success(request, "Settings saved.")
            return redirect("clinic:settings", tenant_slug=request.tenant.slug)
    return render(request, "tenants/settings.html", {"form": form},
                  status=400 if request.method == "POST" else 200)
