"""Operators' admin: clinics, people and memberships. No PHI is reachable from here."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from tenants.admin_scoping import AllClinicsAdmin, AllClinicsTabularInline
from tenants.audit import AuditEvent
from tenants.models import ApiToken, Membership, Tenant, User


class _ReadOnlyMemberships:
    """Memberships are shown, never edited, here: an operator adding themselves to a clinic
    would read its PHI with no audit event. They change only through the clinic's own pages
    (tenants/services.py), which audit every change."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class MembershipInline(_ReadOnlyMemberships, AllClinicsTabularInline):
    model = Membership
    extra = 0
    fields = ["user", "role", "created_at"]
    readonly_fields = fields


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "ae_title", "status", "created_at"]
    list_filter = ["status"]
    search_fields = ["name", "slug", "ae_title", "uuid"]
    readonly_fields = ["uuid"]  # its data keys are bound to it: a restore needs it (create_tenant --uuid)
    inlines = [MembershipInline]


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "is_active", "is_staff", "locked_until"]
    search_fields = ["email", "full_name"]
    list_filter = ["is_active", "is_staff"]
    fieldsets = [
        (None, {"fields": ["email", "password", "full_name"]}),
        ("Status", {"fields": ["is_active", "is_staff", "is_superuser", "failed_logins", "locked_until"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]
    filter_horizontal: list = []


@admin.register(Membership)
class MembershipAdmin(_ReadOnlyMemberships, AllClinicsAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["user__email", "tenant__slug"]


@admin.register(ApiToken)
class ApiTokenAdmin(AllClinicsAdmin):
    list_display = ["name", "tenant", "token_hint", "scopes", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["tenant"]
    readonly_fields = ["token_hash", "token_hint", "created_at", "last_used_at"]


@admin.register(AuditEvent)
class AuditEventAdmin(AllClinicsAdmin):
    """Read-only: the chain is append-only. Details may name patients, so they are not shown."""

    list_display = ["tenant", "seq", "created_at", "actor_type", "actor_label", "action", "object_type"]
    list_filter = ["tenant", "action", "actor_type"]
    fields = ["tenant", "seq", "created_at", "actor_type", "actor_label", "action", "object_type",
              "object_id", "ip", "hash", "prev_hash"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
