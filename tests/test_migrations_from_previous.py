"""A database made by the code before the archive's parts became apps of their own
(issue 9) migrates forward with nothing lost.

The old code is taken from git at BEFORE_APPS, run in its own process to migrate a fresh
database and fill it the way a running clinic does (ingest, archive copies, a DICOM peer,
a retention policy, a deletion, a fixity run, the audit log); then today's `migrate` runs
on that database and today's code reads everything back. On PostgreSQL when the suite
runs on it (CI), else SQLite.
"""

import json
import os
import subprocess
import sys
import tarfile
import uuid
from io import BytesIO
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
# The last commit with storage, retention, gateway and the outbox inside the archive app.
BEFORE_APPS = "c4fb3fe"

OLD_FILL = r"""
import sys
# The project is installed editable: its finder would answer for modules the old tree does
# not have (billing.admin, say) with today's files. The old code must see only its own.
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
import json, django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from archive.gateway.models import DicomPeer
from archive.ingest.spool import spool_chunks
from archive.ingest.service import instance_ingest
from archive.models import Instance, Outbox, Study
from archive.retention.deletion import deletion_request_create
from archive.retention.models import RetentionPolicy
from archive.storage import pipeline
from archive.storage.fixity import fixity_run
from tenants.audit import Actor
from tenants.services import tenant_create
from tests.dicom_factory import make_ct_series, to_bytes

actor = Actor.system("migration test")
tenant, _ = tenant_create(slug="clinic-a", name="Clinic A", owner_email="a@example.org", owner_password=None)
kept = make_ct_series(3, 16, 16, patient_name="Kept^Kim", patient_id="K1", seed=1)
other = make_ct_series(1, 16, 16, patient_name="Other^Olga", patient_id="O1", seed=2)
for ds in [*kept, *other]:
    assert instance_ingest(tenant=tenant, spooled=spool_chunks([to_bytes(ds)]), actor=actor).outcome.value == "stored"
first = Instance.unscoped.filter(tenant=tenant).order_by("pk").first()
assert pipeline.outbox_drive_inline(Outbox.unscoped.get(instance=first).pk)  # copies in both regions
DicomPeer.objects.for_tenant(tenant).create(ae_title="CT01", description="scanner")
RetentionPolicy.objects.for_tenant(tenant).update_or_create(tenant=tenant, defaults={"adult_years": 9})
study = Study.unscoped.get(tenant=tenant, patient_identifier="O1")
from tenants.models import Membership
owner = Membership.unscoped.get(tenant=tenant).user
deletion_request_create(tenant=tenant, study=study, user=owner, reason="sent to the wrong clinic",
                        override_retention=True, actor=actor)
fixity_run()
print(json.dumps({
    "tenant": tenant.pk,
    "instances": sorted(Instance.unscoped.values_list("pk", flat=True)),
    "archived": first.pk,
    "outbox": sorted([row.pk, row.instance_id, row.done_at is not None] for row in Outbox.unscoped.all()),
}))
"""

NEW_READ = r"""
import json, django
django.setup()
from django.contrib.contenttypes.models import ContentType
from archive.gateway.models import DicomPeer
from archive.models import Instance
from archive.outbox.models import Outbox
from archive.retention.models import DeletionRequest, RetentionPolicy
from archive.storage import pipeline
from archive.storage.models import FixityRun, InstanceCopy
from archive.storage.reader import open_instance
from tenants.audit import audit_verify
from tenants.models import Tenant

tenant = Tenant.objects.get(slug="clinic-a")
archived = Instance.unscoped.get(pk=__ARCHIVED__)
with open_instance(archived) as fh:
    readable = len(fh.read()) == archived.size_bytes
pending = Outbox.unscoped.filter(done_at=None).order_by("pk").first()
print(json.dumps({
    "instances": sorted(Instance.unscoped.values_list("pk", flat=True)),
    "outbox": sorted([row.pk, row.subject_id, row.done_at is not None] for row in Outbox.unscoped.all()),
    "kinds": sorted(set(Outbox.unscoped.values_list("kind", flat=True))),
    "copies": sorted(InstanceCopy.unscoped.filter(instance=archived).values_list("region", "state")),
    "peers": list(DicomPeer.objects.for_tenant(tenant).values_list("ae_title", flat=True)),
    "policy_years": RetentionPolicy.objects.for_tenant(tenant).get().adult_years,
    "deletions": list(DeletionRequest.objects.for_tenant(tenant).values_list("reason", "state")),
    "fixity_runs": FixityRun.objects.count(),
    "content_types": sorted(ContentType.objects.filter(model__in=["datakey", "dicompeer", "outbox",
                            "deletionrequest"]).values_list("app_label", "model")),
    "audit_problems": [p.problem for p in audit_verify(tenant=tenant)],
    "readable": readable,
    "pending_driven": pipeline.outbox_drive_inline(pending.pk),
}))
"""


def _database() -> tuple[str, callable]:
    """A fresh database URL of the kind the suite runs on, and how to drop it."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        return None, lambda: None
    import psycopg

    base = url.rsplit("/", 1)[0]
    name = f"cp_migration_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(f"{base}/postgres", autocommit=True)  # the server's maintenance database
    admin.execute(f'CREATE DATABASE "{name}"')

    def drop():
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    return f"{base}/{name}", drop


def _run(code: str, *, cwd: Path, env: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_database_of_the_previous_layout_migrates_with_nothing_lost(tmp_path):
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BEFORE_APPS], capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"this checkout has no commit {BEFORE_APPS} (a shallow clone)")
    old = tmp_path / "old"
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(old, filter="data")
    url, drop = _database()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "PYTEST"))}
    env.update(DJANGO_SETTINGS_MODULE="cloudpacs.settings", CLOUDPACS_VAR_DIR=str(tmp_path / "var"),
               DATABASE_URL=url or f"sqlite:///{tmp_path / 'clinic.sqlite3'}",
               CELERY_BROKER_URL="memory://", CLOUDPACS_MASTER_KEY=settings.CLOUDPACS_MASTER_KEY or
               "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
    # The old tree first on the path: `python -c` puts its working directory there.
    old_env = {**env, "PYTHONPATH": str(old)}
    try:
        before = _run(OLD_FILL, cwd=old, env=old_env)
        migrated = subprocess.run([sys.executable, "manage.py", "migrate", "--no-input"], cwd=ROOT,
                                  env=env, capture_output=True, text=True, timeout=600)
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        after = _run(NEW_READ.replace("__ARCHIVED__", str(before["archived"])), cwd=ROOT, env=env)
    finally:
        drop()
    assert after["instances"] == before["instances"]
    assert after["outbox"] == before["outbox"]  # every row, its instance as subject, done or not
    assert after["kinds"] == ["archive"]
    assert after["copies"] == [["primary", "verified"], ["secondary", "verified"]]
    assert after["peers"] == ["CT01"] and after["policy_years"] == 9
    assert after["deletions"] == [["sent to the wrong clinic", "pending"]]
    assert after["fixity_runs"] == 1
    assert after["content_types"] == [["gateway", "dicompeer"], ["outbox", "outbox"],
                                      ["retention", "deletionrequest"], ["storage", "datakey"]]
    assert after["audit_problems"] == [] and after["readable"]
    assert after["pending_driven"]  # today's pipeline finishes the old code's queued work
