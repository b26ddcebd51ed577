"""The API tokens page: create (secret shown once), list, revoke; a revoked token stops working."""

import re

import pytest

from tenants.audit import AuditEvent
from tenants.models import ApiToken


def _create(client, name="CT room 2", scopes=("upload",)):
    return client.post("/t/acme/settings/tokens/", {"name": name, "scopes": list(scopes)})


def test_create_shows_secret_once(client, tenant, owner, login):
    login(owner)
    response = _create(client, scopes=["upload", "read"])
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    raw = re.search(rb'id="new-token-secret">(cpk_[^<]+)<', response.content).group(1).decode()
    token = ApiToken.objects.for_tenant(tenant).get()
    assert ApiToken.find(raw) == token
    assert token.scopes == ["read", "upload"] and token.created_by == owner
    assert token.token_hash != raw and raw not in str(token.__dict__)
    again = client.get("/t/acme/settings/tokens/")
    assert raw.encode() not in again.content
    assert token.token_hint.encode() in again.content and b"CT room 2" in again.content
    [event] = AuditEvent.objects.for_tenant(tenant).filter(action="token.created")
    assert event.detail == {"name": "CT room 2", "scopes": ["read", "upload"]}


def test_last_used_is_listed(client, tenant, owner, login, make_token):
    raw = make_token(tenant, scopes=["read"], name="reader")
    client.get("/t/acme/", HTTP_AUTHORIZATION=f"Bearer {raw}")  # any clinic URL records the use
    login(owner)
    page = client.get("/t/acme/settings/tokens/").content.decode()
    row = page[page.index("reader"):]
    assert "never" not in row[: row.index("</tr>")]


@pytest.mark.parametrize("data", [
    {"name": "", "scopes": ["upload"]},
    {"name": "x", "scopes": []},
    {"name": "x", "scopes": ["admin"]},
    {"name": "y" * 101, "scopes": ["read"]},
])
def test_bad_input_creates_nothing(client, tenant, owner, login, data):
    login(owner)
    response = client.post("/t/acme/settings/tokens/", data)
    assert response.status_code == 400
    assert not ApiToken.objects.for_tenant(tenant).exists()
    assert not AuditEvent.objects.for_tenant(tenant).filter(action="token.created").exists()


def test_revoke_then_token_gets_401(client, tenant, owner, login, make_token):
    raw = make_token(tenant, scopes=["read"])
    token = ApiToken.find(raw)
    assert client.get("/t/acme/", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code != 401
    login(owner)
    response = client.post(f"/t/acme/settings/tokens/{token.pk}/revoke/")
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    client.logout()
    response = client.get("/t/acme/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 401
    assert AuditEvent.objects.for_tenant(tenant).filter(action="token.revoked").count() == 1


def test_other_clinics_token_is_404(client, tenant, other_tenant, owner, login, make_token):
    raw = make_token(other_tenant)
    theirs = ApiToken.find(raw)
    login(owner)
    assert client.post(f"/t/acme/settings/tokens/{theirs.pk}/revoke/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


@pytest.mark.parametrize("role", ["radiologist", "technologist", "viewer"])
def test_members_without_permission_get_403(client, tenant, make_member, login, make_token, role):
    token = ApiToken.find(make_token(tenant))
    login(make_member(tenant, role))
    assert client.get("/t/acme/settings/tokens/").status_code == 403
    assert _create(client).status_code == 403
    assert client.post(f"/t/acme/settings/tokens/{token.pk}/revoke/").status_code == 403
    assert ApiToken.objects.for_tenant(tenant).count() == 1
    token.refresh_from_db()
    assert token.revoked_at is None


def test_a_token_cannot_manage_tokens(client, tenant, make_token):
    raw = make_token(tenant, scopes=["upload", "read"])
    response = client.post("/t/acme/settings/tokens/", {"name": "evil", "scopes": ["read"]},
                           HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 403
    assert ApiToken.objects.for_tenant(tenant).count() == 1


def test_a_resent_form_creates_no_second_token(client, tenant, owner, login):
    """Reloading the page after creating a token re-sends the same form: one token only."""
    login(owner)
    page = client.get("/t/acme/settings/tokens/").content.decode()
    form_id = re.search(r'name="form_id" value="([^"]+)"', page).group(1)
    data = {"form_id": form_id, "name": "CT room 2", "scopes": ["upload"]}
    first = client.post("/t/acme/settings/tokens/", data)
    assert b"new-token-secret" in first.content
    again = client.post("/t/acme/settings/tokens/", data, follow=True)
    assert b"new-token-secret" not in again.content and b"sent before" in again.content
    assert ApiToken.objects.for_tenant(tenant).count() == 1
    # A freshly rendered form has a new id and makes a new token.
    fresh = re.search(r'name="form_id" value="([^"]+)"', first.content.decode()).group(1)
    assert fresh != form_id
    client.post("/t/acme/settings/tokens/", {**data, "form_id": fresh})
    assert ApiToken.objects.for_tenant(tenant).count() == 2
