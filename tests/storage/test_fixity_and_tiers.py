"""Fixity audit repairs a bad copy from the good one; reads fall back tier 1 -> primary ->
secondary; tier 1 is evicted only once both regions are verified."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from archive.models import Instance
from archive.outbox.models import Outbox
from archive.storage import pipeline
from archive.storage.fixity import fixity_run
from archive.storage.models import FixityFinding, InstanceCopy
from archive.storage.reader import InstanceUnavailable, open_instance
from archive.storage.tier1 import tier1_path
from archive.storage.tiers import instance_local_path, tier1_evict
from tenants.models import AuditEvent
from tests.archive.test_services_ingest import ingest_bytes
from tests.dicom_factory import make_ct_series, to_bytes


@pytest.fixture
def archived(tenant, s3_regions):
    """Two instances verified in both regions; returns (instance, its plaintext) pairs."""
    out = []
    for ds in make_ct_series(2):
        data = to_bytes(ds)
        instance = ingest_bytes(tenant, data).instance
        out.append((instance, data))
    for row in Outbox.objects.for_tenant(tenant):
        assert pipeline.outbox_drive_inline(row.pk)
    return out


def _flip_byte(server, key):
    client = server.client()
    blob = bytearray(client.get_object(Bucket=server.bucket, Key=key)["Body"].read())
    blob[len(blob) // 2] ^= 0x40
    client.put_object(Bucket=server.bucket, Key=key, Body=bytes(blob))


def _stored(server, key):
    return server.client().get_object(Bucket=server.bucket, Key=key)["Body"].read()


def test_audit_repairs_corrupt_and_missing_copies(tenant, archived, seaweed):
    (bad, _), (gone, _) = archived
    _flip_byte(seaweed["secondary"], bad.storage_key)
    seaweed["primary"].client().delete_object(Bucket=seaweed["primary"].bucket, Key=gone.storage_key)
    run = fixity_run(limit=0)
    assert (run.repaired, run.unrepaired, run.error) == (2, 0, "")
    findings = {(f.instance_id, f.region, f.problem, f.action)
                for f in FixityFinding.objects.for_tenant(tenant).filter(run=run)}
    assert findings == {(bad.pk, "secondary", "corrupt", "repaired"),
                        (gone.pk, "primary", "missing", "repaired")}
    # Repaired from the good region: the same ciphertext again, and it reads back clean.
    assert _stored(seaweed["secondary"], bad.storage_key) == _stored(seaweed["primary"], bad.storage_key)
    assert _stored(seaweed["primary"], gone.storage_key) == _stored(seaweed["secondary"], gone.storage_key)
    assert fixity_run(limit=0).repaired == 0
    actions = set(AuditEvent.objects.for_tenant(tenant).values_list("action", flat=True))
    assert "storage.copy_repaired" in actions


def test_audit_reports_a_copy_it_cannot_repair(tenant, archived, seaweed):
    (instance, _), _ = archived
    for server in seaweed.values():
        _flip_byte(server, instance.storage_key)
    out = StringIO()
    with pytest.raises(SystemExit):
        call_command("fixity_audit", "--limit", "0", stdout=out)
    assert "unrepaired 2" in out.getvalue()
    assert set(InstanceCopy.objects.for_tenant(tenant).filter(instance=instance)
               .values_list("state", flat=True)) == {"failed"}


def test_reads_fall_back_to_primary_then_secondary(tenant, archived, seaweed):
    (instance, data), _ = archived
    tier1_path(instance.storage_key).unlink()
    with open_instance(instance) as fh:  # what WADO and C-GET call
        assert fh.read() == data  # from the primary, cached again
    assert tier1_path(instance.storage_key).exists()
    tier1_path(instance.storage_key).unlink()
    _flip_byte(seaweed["primary"], instance.storage_key)
    with open_instance(instance) as fh:  # primary corrupt: secondary
        assert fh.read() == data
    tier1_path(instance.storage_key).unlink()
    _flip_byte(seaweed["secondary"], instance.storage_key)
    with pytest.raises(InstanceUnavailable):
        instance_local_path(instance)
    assert not tier1_path(instance.storage_key).exists()  # nothing unverified was cached


def test_tier1_evicted_only_when_old_and_verified_in_both_regions(tenant, s3_regions, settings):
    settings.TIER1_KEEP_DAYS = 7
    datasets = make_ct_series(3)
    instances = [ingest_bytes(tenant, to_bytes(ds)).instance for ds in datasets]
    old = timezone.now() - timedelta(days=8)
    Instance.objects.for_tenant(tenant).update(created_at=old)
    both, primary_only, none = instances
    pipeline.outbox_drive_inline(Outbox.objects.for_tenant(tenant).filter(kind="archive").get(subject_id=both.pk).pk)
    pipeline.copy_upload(primary_only, "primary")
    assert tier1_evict() == 1
    assert not tier1_path(both.storage_key).exists()
    assert tier1_path(primary_only.storage_key).exists() and tier1_path(none.storage_key).exists()
    # Recent studies stay in tier 1 even when verified.
    Instance.objects.for_tenant(tenant).update(created_at=timezone.now())
    instance_local_path(both)
    assert tier1_evict() == 0 and tier1_path(both.storage_key).exists()


def test_operator_page_lists_runs_and_findings(tenant, archived, seaweed, login, django_user_model):
    operator = django_user_model.objects.create_superuser("ops@cloudpacs.test", "x" * 20)
    admin_client = login(operator)  # with a verified second factor, as the admin requires
    (bad, _), _ = archived
    _flip_byte(seaweed["primary"], bad.storage_key)
    run = fixity_run(limit=0)
    page = admin_client.get(f"/admin/storage/fixityrun/{run.pk}/change/").content.decode()
    assert "corrupt" in page and "repaired" in page and "primary" in page
    listing = admin_client.get("/admin/storage/fixityfinding/").content.decode()
    assert bad.storage_key in listing or str(bad.pk) in listing
    assert admin_client.get("/admin/storage/instancecopy/").status_code == 200
