"""Anchors: the chain head, signed, in both regions; deleting the newest events is found.

Regions are local folders here (the embedded mode); tests/storage/test_audit_anchor_s3.py
does the same against two SeaweedFS servers."""

import hashlib
import hmac
import json
import socket

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from cloudpacs.celery import app
from tenants.audit import Actor, AuditEvent, audit_record
from tenants.audit_anchor import AuditAnchorState
from tenants.tasks import audit_anchor
from tests.tenants.audit_tamper import delete_newest, verify, verify_fails

pytestmark = pytest.mark.usefixtures("audit_master_key", "audit_regions")


def record(tenant, n: int) -> None:
    for i in range(n):
        audit_record(tenant=tenant, actor=Actor.system(), action="study.viewed", obj_type="study",
                     obj_id=str(i))


def anchors(regions, tenant) -> dict[str, list[str]]:
    return {region: sorted(p.name for p in (path / "_audit" / str(tenant.pk)).glob("*"))
            for region, path in regions.items()}


def run_task() -> int:
    return audit_anchor.apply().get()


def test_beat_runs_the_anchor_task_every_interval():
    entry = settings.CELERY_BEAT_SCHEDULE["tenants-audit-anchor"]
    assert entry == {"task": "tenants.audit_anchor",
                     "schedule": float(settings.AUDIT_ANCHOR_INTERVAL_SECONDS)}
    app.loader.import_default_modules()  # what a worker does: autodiscover the apps' tasks
    assert entry["task"] in app.tasks


def test_task_writes_a_signed_anchor_to_both_regions_when_the_head_moves(
        tenant, other_tenant, audit_regions, audit_master_key):
    assert run_task() == 2
    assert anchors(audit_regions, tenant) == {"primary": ["000000000002.json"],
                                              "secondary": ["000000000002.json"]}
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"cloudpacs audit anchor v1").derive(audit_master_key)
    head = AuditEvent.objects.for_tenant(tenant).get(seq=2)
    for path in audit_regions.values():
        doc = json.loads((path / f"_audit/{tenant.pk}/000000000002.json").read_bytes())
        signature = doc.pop("mac")
        assert doc == {"version": 1, "tenant_id": tenant.pk, "seq": 2, "hash": head.hash,
                       "time": doc["time"]}
        body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        assert signature == hmac.new(key, body, hashlib.sha256).hexdigest()
    assert AuditAnchorState.objects.for_tenant(tenant).get().seq == 2

    assert run_task() == 0  # no head moved
    record(tenant, 3)
    assert run_task() == 1  # only the clinic whose head moved
    assert anchors(audit_regions, tenant)["secondary"] == ["000000000002.json", "000000000005.json"]
    assert anchors(audit_regions, other_tenant)["primary"] == ["000000000002.json"]


def test_verify_passes_on_an_intact_chain_with_anchors(tenant, other_tenant):
    record(tenant, 2)
    run_task()
    record(tenant, 1)  # after the anchor: still fine
    out = verify()
    assert ("acme: 5 events, chain intact; anchored at event 4 in primary; anchored at event 4 "
            "in secondary") in out
    assert "other: 2 events, chain intact; anchored at event 2 in primary" in out


def test_newest_events_deleted_after_an_anchor_are_found(tenant, other_tenant):
    record(tenant, 3)
    run_task()
    delete_newest(tenant, 2)
    out = verify_fails()
    for region in ("primary", "secondary"):
        assert f"acme: chain ends at event 3 but {region} anchored event 5 at " in out
    assert "newest events were removed" in out
    assert "other: 2 events, chain intact" in out


def test_a_replaced_tail_is_found_and_not_anchored_over(tenant, audit_regions):
    record(tenant, 2)
    run_task()
    delete_newest(tenant, 1)
    record(tenant, 2)  # new events take seq 4 again, and 5: the chain is longer than anchored
    assert verify_fails("acme").count("event 4 differs from its anchor in") == 2
    # The task refuses to anchor the new head over the mismatch, whatever its DB bookkeeping
    # says (an attacker could set that too), so the evidence stays the newest anchor.
    AuditAnchorState.objects.for_tenant(tenant).update(seq=5, hash="0" * 64)
    assert run_task() == 0
    assert anchors(audit_regions, tenant)["primary"] == ["000000000004.json"]
    assert "event 4 differs from its anchor in primary" in verify_fails("acme")


def test_a_forged_anchor_is_reported(tenant, audit_regions):
    run_task()
    path = audit_regions["secondary"] / f"_audit/{tenant.pk}/000000000002.json"
    doc = json.loads(path.read_bytes())
    path.write_text(json.dumps({**doc, "seq": 9}))
    (path.parent / "000000000009.json").write_text(json.dumps({**doc, "seq": 9}))
    out = verify_fails("acme")
    assert f"anchor _audit/{tenant.pk}/000000000009.json in secondary has a bad signature" in out
    assert "anchored at event 2 in primary" not in out  # broken clinics get no intact line


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_region_is_said_and_the_other_still_checked(tenant, settings, monkeypatch):
    from cloudpacs.settings import _region_storage

    record(tenant, 2)
    assert run_task() == 1
    # An S3 endpoint nobody listens on: connections are refused at once.
    for name, value in {"BUCKET": "down", "ENDPOINT": f"http://127.0.0.1:{unused_port()}",
                        "ACCESS_KEY": "x", "SECRET_KEY": "y", "REGION": "us-east-1"}.items():
        monkeypatch.setenv(f"STORAGE_SECONDARY_{name}", value)
    settings.STORAGES = {**settings.STORAGES, "secondary": _region_storage("secondary")}
    down = "secondary unreachable (EndpointConnectionError), anchors not checked"
    assert f"acme: 4 events, chain intact; anchored at event 4 in primary; {down}" in verify()

    record(tenant, 1)
    assert run_task() == 0  # one region down: not anchored, retried next run
    assert AuditAnchorState.objects.for_tenant(tenant).get().seq == 4
    delete_newest(tenant, 2)
    out = verify_fails("acme")
    assert "acme: chain ends at event 3 but primary anchored event 4" in out
    assert f"acme: {down}" in out
