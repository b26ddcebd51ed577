"""Admin bases for tenant-owned models. The operators' admin sees every clinic by design,
so its rows come from `Model.unscoped`; the default manager (scoped) would refuse."""

from django.contrib import admin
from django.forms.models import BaseInlineFormSet

from tenants.scoping import default_manager_unscoped


def _all_clinics(model_admin, request):
    qs = model_admin.model.unscoped.get_queryset()
    ordering = model_admin.get_ordering(request)
    return qs.order_by(*ordering) if ordering else qs


class AllClinicsAdmin(admin.ModelAdmin):
    def get_queryset(self, request):
        return _all_clinics(self, request)


class AllClinicsInlineFormSet(BaseInlineFormSet):
    def add_fields(self, form, index):
        # Django gives each row's hidden id field a queryset of the default manager.
        with default_manager_unscoped():
            super().add_fields(form, index)


class AllClinicsTabularInline(admin.TabularInline):
    formset = AllClinicsInlineFormSet

    def get_queryset(self, request):
        qs = _all_clinics(self, request)
        return qs if self.has_view_or_change_permission(request) else qs.none()
