"""Operators cannot join a clinic through the admin: memberships are read-only there, so
they change only through the clinic's own pages and services, which audit every change."""

from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse

from tenants import roles
from tenants.models import Membership
from tests.tenants.test_admin import operator, ops  # noqa: F401


def test_operator_cannot_add_change_or_delete_memberships(ops, operator, tenant, make_member):
    member = make_member(tenant, roles.VIEWER)
    row = Membership.objects.for_tenant(tenant).get(user=member)
    before = set(Membership.unscoped.values_list("pk", "tenant_id", "user_id", "role"))

    assert ops.get(reverse("admin:tenants_membership_add")).status_code == 403
    add = ops.post(reverse("admin:tenants_membership_add"),
                   {"tenant": tenant.pk, "user": operator.pk, "role": roles.OWNER})
    assert add.status_code == 403
    # Promote a member, or take their place, through the change form: nothing changes.
    ops.post(reverse("admin:tenants_membership_change", args=[row.pk]),
             {"tenant": tenant.pk, "user": operator.pk, "role": roles.OWNER, "created_at_0": "2024-01-01",
              "created_at_1": "00:00:00"})
    assert ops.post(reverse("admin:tenants_membership_delete", args=[row.pk]), {"post": "yes"}).status_code == 403
    ops.post(reverse("admin:tenants_membership_changelist"),
             {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"})
    assert set(Membership.unscoped.values_list("pk", "tenant_id", "user_id", "role")) == before


def test_operator_cannot_join_a_clinic_through_the_tenant_inline(ops, operator, tenant, owner):
    """The clinic's change page still saves its own fields, but ignores membership rows."""
    owner_row = Membership.objects.for_tenant(tenant).get(user=owner)
    P = "-1"  # the inline's formset prefix: tenant FKs have related_name="+", so Django numbers it
    data = {"name": "Acme Clinic Renamed", "slug": tenant.slug, "ae_title": tenant.ae_title, "status": tenant.status,
            "created_at_0": "2024-01-01", "created_at_1": "00:00:00",
            f"{P}-TOTAL_FORMS": "2", f"{P}-INITIAL_FORMS": "1",
            f"{P}-MIN_NUM_FORMS": "0", f"{P}-MAX_NUM_FORMS": "1000",
            f"{P}-0-id": owner_row.pk, f"{P}-0-tenant": tenant.pk,
            f"{P}-0-user": owner.pk, f"{P}-0-role": roles.VIEWER,
            f"{P}-1-tenant": tenant.pk, f"{P}-1-user": operator.pk,
            f"{P}-1-role": roles.OWNER,
            **{f"{P}-{i}-created_at_{j}": v for i in (0, 1) for j, v in enumerate(("2024-01-01", "00:00:00"))}}
    response = ops.post(reverse("admin:tenants_tenant_change", args=[tenant.pk]), data)
    assert response.status_code == 302, response.context["errors"] if response.context else response
    tenant.refresh_from_db()
    assert tenant.name == "Acme Clinic Renamed"  # the form was saved ...
    assert not Membership.unscoped.filter(user=operator).exists()  # ... without its membership rows
    assert Membership.objects.for_tenant(tenant).get(pk=owner_row.pk).role == roles.OWNER


def test_membership_admin_and_inline_are_read_only(operator, tenant):
    request = RequestFactory().get("/admin/")
    request.user = operator
    model_admin = admin.site._registry[Membership]
    inlines = [i for i in admin.site._registry[type(tenant)].get_inline_instances(request)
               if i.model is Membership]
    for ma in (model_admin, *inlines):
        assert not ma.has_add_permission(request, *([tenant] if ma in inlines else []))
        assert not ma.has_change_permission(request)
        assert not ma.has_delete_permission(request)


def test_memberships_still_listed(ops, tenant, make_member):
    member = make_member(tenant, roles.RADIOLOGIST)
    row = Membership.objects.for_tenant(tenant).get(user=member)
    page = ops.get(reverse("admin:tenants_membership_changelist"))
    assert page.status_code == 200 and member.email in page.content.decode()
    assert ops.get(reverse("admin:tenants_membership_change", args=[row.pk])).status_code == 200  # view only
    clinic = ops.get(reverse("admin:tenants_tenant_change", args=[tenant.pk]))
    assert clinic.status_code == 200 and member.email in clinic.content.decode()
