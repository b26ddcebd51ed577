"""`manage.py create_tenant` and `manage.py create_api_token`, through the real CLI."""

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

from tenants.audit import AuditEvent
from tenants.models import ApiToken, Membership, Tenant, User

ROOT = Path(settings.BASE_DIR)
PASSWORD = "a long enough owner passphrase 7"


def database_url() -> str:
    """The test database, for a `manage.py` subprocess to use."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def manage(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url()}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def snapshot(slug):
    tenant = Tenant.objects.get(slug=slug)
    owner = Membership.objects.for_tenant(tenant).get(role="owner").user
    return {
        "tenant": (tenant.pk, tenant.name, tenant.ae_title, tenant.status),
        "owner": (owner.pk, owner.email, owner.password),
        "members": Membership.objects.for_tenant(tenant).count(),
        "events": AuditEvent.objects.for_tenant(tenant).count(),
        "users": User.objects.count(),
    }


@pytest.mark.django_db(transaction=True)
def test_cli_create_tenant_then_token_that_works_as_bearer():
    created = manage("create_tenant", "northside", "--name", "Northside Imaging",
                     "--owner", "Boss@Northside.test", "--password", PASSWORD)
    assert created.returncode == 0, created.stderr
    assert "Created clinic northside (AE title NORTHSIDE)" in created.stdout
    before = snapshot("northside")
    assert before["tenant"][1:] == ("Northside Imaging", "NORTHSIDE", "active")
    assert before["owner"][1] == "boss@northside.test"
    assert User.objects.get(email="boss@northside.test").check_password(PASSWORD)

    again = manage("create_tenant", "northside", "--name", "Something Else",
                   "--owner", "intruder@evil.test", "--password", "another password 12345")
    assert again.returncode == 0, again.stderr
    assert "exists already" in again.stdout
    assert snapshot("northside") == before
    assert not User.objects.filter(email="intruder@evil.test").exists()

    issued = manage("create_api_token", "northside", "--name", "CT scanner", "--scopes", "upload,read")
    assert issued.returncode == 0, issued.stderr
    raw = issued.stdout.rstrip("\n").splitlines()[-1]
    assert raw.startswith(ApiToken.PREFIX) and " " not in raw
    token = ApiToken.find(raw)
    assert token.tenant.slug == "northside" and token.scopes == ["read", "upload"]
    assert AuditEvent.objects.for_tenant(token.tenant).filter(action="token.created").count() == 1

    # The token authenticates for its own clinic: the middleware resolves it (a member-only
    # page answers 403 "not API tokens"), where a wrong secret is 401 and a foreign clinic 404.
    client = Client()
    response = client.get("/t/northside/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 403
    assert response.json() == {"error": "This page is for clinic members, not API tokens"}
    token.refresh_from_db()
    assert token.last_used_at is not None
    assert client.get("/t/northside/", HTTP_AUTHORIZATION=f"Bearer {raw}x").status_code == 401
    manage("create_tenant", "southside", "--name", "South", "--owner", "s@south.test",
           "--password", PASSWORD)
    assert client.get("/t/southside/", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 404


def test_create_api_token_last_line_is_the_token(tenant):
    out = io.StringIO()
    call_command("create_api_token", "acme", "--name", "uploader", "--scopes", "upload", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[-1] != "" and ApiToken.find(lines[-1]).scopes == ["upload"]
    assert lines[-1] not in "\n".join(lines[:-1])


@pytest.mark.parametrize("scopes", ["admin", "upload,delete", "", " , "])
def test_create_api_token_refuses_bad_scopes_and_stores_nothing(tenant, scopes):
    with pytest.raises(CommandError, match="Scopes must be among"):
        call_command("create_api_token", "acme", "--name", "x", "--scopes", scopes, stdout=io.StringIO())
    assert not ApiToken.objects.for_tenant(tenant).exists()
    assert not AuditEvent.objects.for_tenant(tenant).filter(action="token.created").exists()


def test_create_api_token_unknown_clinic(db):
    with pytest.raises(CommandError, match="No clinic with slug 'ghost'"):
        call_command("create_api_token", "ghost", "--name", "x", stdout=io.StringIO())
    assert not ApiToken.unscoped.exists()


@pytest.mark.parametrize("slug", ["Bad Slug", "UPPER", "dots.not.allowed", ""])
def test_create_tenant_refuses_a_bad_slug(db, slug):
    with pytest.raises(CommandError, match="not a valid slug"):
        call_command("create_tenant", slug, "--name", "X", "--owner", "x@x.test", "--password", PASSWORD,
                     stdout=io.StringIO())
    assert not Tenant.objects.exists() and not User.objects.exists()


def test_create_tenant_requires_name_owner_and_password(db):
    with pytest.raises(CommandError, match="--owner"):
        call_command("create_tenant", "acme", "--name", "X", "--password", PASSWORD, stdout=io.StringIO())
    assert not Tenant.objects.exists()


def test_create_tenant_with_its_uuid_recreates_its_identity(db):
    """Before a restore, a clinic is re-created with the uuid its data keys are bound to."""
    import uuid

    ident = uuid.uuid4()
    out = io.StringIO()
    call_command("create_tenant", "acme", "--name", "Acme", "--owner", "a@acme.test", "--password", PASSWORD,
                 "--uuid", str(ident), stdout=out)
    assert Tenant.objects.get(slug="acme").uuid == ident and f"uuid {ident}" in out.getvalue()
    with pytest.raises(CommandError, match="another clinic has the uuid"):
        call_command("create_tenant", "other", "--name", "O", "--owner", "o@o.test", "--password", PASSWORD,
                     "--uuid", str(ident), stdout=io.StringIO())
    with pytest.raises(CommandError, match="exists already with another uuid"):
        call_command("create_tenant", "acme", "--name", "Acme", "--owner", "a@acme.test", "--password",
                     PASSWORD, "--uuid", str(uuid.uuid4()), stdout=io.StringIO())
    assert list(Tenant.objects.values_list("slug", flat=True)) == ["acme"]
    with pytest.raises(CommandError, match="uuid"):
        call_command("create_tenant", "bad", "--name", "B", "--owner", "b@b.test", "--password", PASSWORD,
                     "--uuid", "not-a-uuid", stdout=io.StringIO())
