"""Operator pages for durable storage (Django admin): fixity audit runs and their findings,
per-region copy states with their last errors, and bytes per storage class with their
estimated cost. Read-only; no PHI (ids, keys and clinic names only)."""

from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import path

from archive.storage.classes import bytes_by_class, cold_class, prices
from archive.storage.models import FixityFinding, FixityRun, InstanceCopy
from tenants.admin_scoping import AllClinicsAdmin, AllClinicsTabularInline


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class FindingInline(AllClinicsTabularInline):
    model = FixityFinding
    fields = ["tenant", "instance_id", "region", "problem", "action", "problem_detail", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="detail")
    def problem_detail(self, obj) -> str:
        return obj.detail


@admin.register(FixityRun)
class FixityRunAdmin(ReadOnlyAdmin):
    list_display = ["pk", "started_at", "finished_at", "checked", "ok", "repaired", "unrepaired", "error"]
    list_filter = ["started_at"]
    fields = ["started_at", "finished_at", "checked", "ok", "repaired", "unrepaired", "error"]
    inlines = [FindingInline]


@admin.register(FixityFinding)
class FixityFindingAdmin(ReadOnlyAdmin, AllClinicsAdmin):
    list_display = ["created_at", "tenant", "instance_id", "region", "problem", "action", "problem_detail"]
    list_filter = ["action", "problem", "region"]
    fields = ["run", "tenant", "instance_id", "storage_key", "region", "problem", "action",
              "problem_detail", "created_at"]
    readonly_fields = fields

    @admin.display(description="detail")
    def problem_detail(self, obj) -> str:
        return obj.detail


@admin.register(InstanceCopy)
class InstanceCopyAdmin(ReadOnlyAdmin, AllClinicsAdmin):
    list_display = ["instance_id", "tenant", "region", "state", "storage_class", "attempts", "updated_at",
                    "last_error"]
    list_filter = ["state", "region", "storage_class"]
    fields = ["tenant", "instance_id", "region", "state", "storage_class", "cipher_sha256", "cipher_size", "key_id",
              "uploaded_at", "verified_at", "checked_at", "attempts", "last_error", "updated_at"]
    readonly_fields = fields

    def get_urls(self):
        return [path("classes/", self.admin_site.admin_view(self.classes), name="storage_classes"),
                *super().get_urls()]

    def classes(self, request):
        """Bytes per clinic, region and storage class, with the estimated monthly cost."""
        rows = bytes_by_class()
        context = {**self.admin_site.each_context(request), "title": "Storage by class", "rows": rows,
                   "prices": prices(), "cold_class": cold_class(),
                   "total": sum(r["monthly_cost"] or 0 for r in rows)}
        return TemplateResponse(request, "storage/admin_classes.html", context)
