"""The clinic settings page: name and AE title, validated, unique and audited."""

import pytest

from tenants.audit import AuditEvent
from tenants.models import Tenant


def test_change_name_and_ae_title_is_audited(client, tenant, owner, login):
    login(owner)
    assert client.get("/t/acme/settings/").status_code == 200
    response = client.post("/t/acme/settings/", {"name": "Acme Imaging", "ae_title": "acme_pacs"})
    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.name == "Acme Imaging" and tenant.ae_title == "ACME_PACS"
    [event] = AuditEvent.objects.for_tenant(tenant).filter(action="tenant.settings_changed")
    assert event.detail == {"changes": {"name": ["Acme Clinic", "Acme Imaging"],
                                        "ae_title": ["ACME", "ACME_PACS"]}}
    assert event.actor_label == owner.email


def test_no_change_no_audit(client, tenant, owner, login):
    login(owner)
    client.post("/t/acme/settings/", {"name": tenant.name, "ae_title": tenant.ae_title})
    assert not AuditEvent.objects.for_tenant(tenant).filter(action="tenant.settings_changed").exists()


@pytest.mark.parametrize("data, message", [
    ({"name": "Acme", "ae_title": "OTHER"}, b"already exists"),
    ({"name": "Acme", "ae_title": "TOO_LONG_AE_TITLE_X"}, b"at most 16"),
    ({"name": "Acme", "ae_title": "BAD*CHARS"}, b"1-16 characters"),
    ({"name": "Acme", "ae_title": ""}, b"required"),
    ({"name": "   ", "ae_title": "ACME"}, b"required"),
])
def test_bad_input_changes_nothing(client, tenant, other_tenant, owner, login, data, message):
    login(owner)
    response = client.post("/t/acme/settings/", data)
    assert response.status_code == 400
    assert message in response.content
    fresh = Tenant.objects.get(pk=tenant.pk)
    assert (fresh.name, fresh.ae_title) == ("Acme Clinic", "ACME")
    assert not AuditEvent.objects.for_tenant(tenant).filter(action="tenant.settings_changed").exists()
    # The page header still shows the stored name, not what was typed.
    assert b"<title>Clinic settings \xc2\xb7 Acme Clinic</title>" in response.content


@pytest.mark.parametrize("role", ["radiologist", "technologist", "viewer"])
def test_members_without_permission_get_403(client, tenant, make_member, login, role):
    login(make_member(tenant, role))
    assert client.get("/t/acme/settings/").status_code == 403
    assert client.post("/t/acme/settings/", {"name": "Hacked", "ae_title": "HACK"}).status_code == 403
    assert Tenant.objects.get(pk=tenant.pk).name == "Acme Clinic"


def test_admin_may_change_settings(client, tenant, make_member, login):
    login(make_member(tenant, "admin"))
    assert client.post("/t/acme/settings/", {"name": "Acme 2", "ae_title": "ACME"}).status_code == 302
