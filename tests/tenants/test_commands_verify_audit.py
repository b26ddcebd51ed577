"""`manage.py verify_audit` finds rows changed, removed or forged behind the app's back.

The tampering goes through raw SQL, as an attacker with database access would. On
PostgreSQL the append-only trigger is switched off first (ALTER TABLE ... DISABLE
TRIGGER), to prove the hash chain catches what gets past it.
"""

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from tenants.audit import Actor, AuditEvent, audit_record
from tests.tenants.audit_tamper import raw_sql, verify, verify_fails

ROOT = Path(settings.BASE_DIR)
pytestmark = pytest.mark.usefixtures("audit_master_key", "audit_regions")


@pytest.fixture
def log(tenant):
    for i in range(5):
        audit_record(tenant=tenant, actor=Actor.system(), action="study.viewed", obj_type="study",
                     obj_id=str(i), detail={"i": i})
    return tenant  # events 1..2 from the clinic's creation, 3..7 above


def test_intact_chains_pass(log, other_tenant):
    out = verify()
    assert "acme: 7 events, chain intact" in out
    assert "other: 2 events, chain intact" in out
    assert verify("acme").strip() == "acme: 7 events, chain intact; no anchor yet in primary; " \
                                     "no anchor yet in secondary"


def test_row_changed_by_raw_sql_is_found(log, other_tenant):
    raw_sql("UPDATE tenants_auditevent SET actor_label = %s WHERE tenant_id = %s AND seq = 4",
            ["nobody", log.pk])
    out = verify_fails()
    assert "acme: event 4: event was altered after it was written" in out
    assert "other: 2 events, chain intact" in out


def test_deleted_row_is_found(log):
    raw_sql("DELETE FROM tenants_auditevent WHERE tenant_id = %s AND seq = 5", [log.pk])
    out = verify_fails("acme")
    assert "events 5..5 are missing" in out
    assert "event 6: link to the previous event is broken" in out


def test_row_inserted_out_of_chain_is_found(log):
    # A forged event with a self-consistent hash, but not linked to the real last event.
    forged = AuditEvent(tenant=log, seq=8, actor_type=AuditEvent.SYSTEM, action="share.revoked",
                        prev_hash="f" * 64)
    forged.hash = forged.compute_hash()
    forged.save()
    out = verify_fails("acme")
    assert "event 8: link to the previous event is broken" in out
    assert "altered" not in out


def test_unknown_clinic_is_an_error(db):
    with pytest.raises(CommandError, match="No clinic with slug 'nope'"):
        call_command("verify_audit", "nope", stdout=io.StringIO())


def database_url() -> str:
    """The test database, for a `manage.py` subprocess to use."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def manage(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url(),
           "CLOUDPACS_MASTER_KEY": settings.CLOUDPACS_MASTER_KEY,
           **{f"STORAGE_{region.upper()}_PATH": settings.STORAGES[region]["OPTIONS"]["location"]
              for region in ("primary", "secondary")}}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.django_db(transaction=True)
def test_cli_exit_status(make_tenant):
    tenant = make_tenant("cli")
    intact = manage("verify_audit", "cli")
    assert intact.returncode == 0, intact.stderr
    assert "cli: 2 events, chain intact" in intact.stdout
    raw_sql("UPDATE tenants_auditevent SET action = 'tenant.renamed' WHERE tenant_id = %s AND seq = 1",
            [tenant.pk])
    broken = manage("verify_audit")
    assert broken.returncode != 0
    assert "cli: event 1: event was altered after it was written" in broken.stdout
    assert "Audit chain broken in 1 clinic" in broken.stderr
