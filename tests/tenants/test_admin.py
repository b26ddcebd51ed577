"""The operators' Django admin: clinics, people and memberships; never PHI."""

import re

import pytest
from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.test import RequestFactory
from django.urls import reverse

from tenants import roles
from tenants.audit import Actor, AuditEvent, audit_record
from tests.conftest import PASSWORD

PHI_MARKER = "DOE^JANE"
# Field names that would put patient data on an operator's screen.
PHI_FIELD = re.compile(r"patient|birth|accession|referring|physician|(^|__)detail($|__)")


@pytest.fixture
def operator(db):
    from tenants.models import User

    return User.objects.create_superuser("ops@cloudpacs.test", PASSWORD)


@pytest.fixture
def ops(login, operator):
    return login(operator)  # with a verified TOTP device, as the admin requires


def test_operator_without_second_factor_is_asked_for_it(client, operator):
    client.force_login(operator)
    response = client.get(reverse("admin:tenants_tenant_changelist"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    page = client.get(response["Location"]).content.decode()
    assert "otp_token" in page or "OTP" in page


@pytest.fixture
def phi_event(tenant):
    return audit_record(tenant=tenant, actor=Actor(AuditEvent.USER, "1", "rad@acme.test",
                                                   user_agent="Mozilla/5.0 CanaryBrowser"),
                        action="study.viewed", obj_type="study", obj_id="42",
                        detail={"patient_name": PHI_MARKER, "patient_id": "MRN-778899"})


def test_operator_lists_tenants_users_and_memberships(ops, tenant, other_tenant, make_member):
    member = make_member(tenant, roles.RADIOLOGIST)
    tenants_page = ops.get(reverse("admin:tenants_tenant_changelist")).content.decode()
    assert "Acme Clinic" in tenants_page and "Other Clinic" in tenants_page
    users_page = ops.get(reverse("admin:tenants_user_changelist")).content.decode()
    assert member.email in users_page and "owner@other.test" in users_page
    memberships = ops.get(reverse("admin:tenants_membership_changelist"))
    assert memberships.status_code == 200
    assert member.email in memberships.content.decode()
    tenant_page = ops.get(reverse("admin:tenants_tenant_change", args=[tenant.pk]))
    assert tenant_page.status_code == 200
    assert member.email in tenant_page.content.decode()  # the membership inline
    assert str(tenant.uuid) in tenant_page.content.decode()  # a restore needs it
    found = ops.get(reverse("admin:tenants_tenant_changelist"), {"q": str(tenant.uuid)}).content.decode()
    assert "Acme Clinic" in found and "Other Clinic" not in found
    assert ops.get(reverse("admin:tenants_user_changelist"), {"q": "owner@acme"}).status_code == 200
    assert ops.get(reverse("admin:tenants_user_add")).status_code == 200
    assert ops.get(reverse("admin:tenants_user_change", args=[member.pk])).status_code == 200


def test_audit_events_show_no_detail(ops, phi_event):
    changelist = ops.get(reverse("admin:tenants_auditevent_changelist"))
    assert changelist.status_code == 200
    body = changelist.content.decode()
    assert "study.viewed" in body
    change = ops.get(reverse("admin:tenants_auditevent_change", args=[phi_event.pk]))
    assert change.status_code == 200
    for page in (body, change.content.decode()):
        assert PHI_MARKER not in page and "MRN-778899" not in page
        assert "CanaryBrowser" not in page


def test_audit_events_cannot_be_added_changed_or_deleted(ops, phi_event):
    assert ops.get(reverse("admin:tenants_auditevent_add")).status_code == 403
    assert ops.post(reverse("admin:tenants_auditevent_delete", args=[phi_event.pk]),
                    {"post": "yes"}).status_code == 403
    response = ops.post(reverse("admin:tenants_auditevent_change", args=[phi_event.pk]),
                        {"action": "nothing.happened"})
    assert response.status_code == 403
    bulk = ops.post(reverse("admin:tenants_auditevent_changelist"),
                    {"action": "delete_selected", "_selected_action": [phi_event.pk], "post": "yes"})
    assert bulk.status_code in (200, 302)
    assert AuditEvent.objects.for_tenant(phi_event.tenant).get(pk=phi_event.pk).action == "study.viewed"


def test_clinic_members_are_not_operators(client, login, owner):
    login(owner)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_no_registered_admin_exposes_phi_fields(operator, tenant):
    """Every model in the admin, every page of it: no field that names a patient."""
    request = RequestFactory().get("/admin/")
    request.user = operator
    offenders = []
    for model, model_admin in admin.site._registry.items():
        names = [*model_admin.get_list_display(request), *model_admin.get_search_fields(request),
                 *flatten_fieldsets(model_admin.get_fieldsets(request)),
                 *model_admin.get_readonly_fields(request)]
        for inline in model_admin.get_inline_instances(request):
            names += flatten_fieldsets(inline.get_fieldsets(request))
        offenders += [f"{model._meta.label}.{n}" for n in names if isinstance(n, str) and PHI_FIELD.search(n)]
    assert not offenders, f"PHI in the operators' admin: {offenders}"


def test_every_admin_changelist_renders_without_phi(ops, phi_event):
    for model in admin.site._registry:
        meta = model._meta
        response = ops.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
        assert response.status_code == 200, meta.label
        assert PHI_MARKER not in response.content.decode(), meta.label
