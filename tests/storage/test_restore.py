"""The whole archive comes back from the secondary region alone, bit for bit."""

import uuid
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db.models import ProtectedError, RestrictedError

from archive.models import Instance, Outbox
from archive.storage import keys, pipeline
from archive.storage.reader import open_instance
from archive.storage.selectors import storage_status
from archive.storage.tier1 import tier1_path
from tests.archive.test_services_ingest import ingest_bytes
from tests.dicom_factory import make_ct_series, to_bytes


@pytest.fixture
def fresh_buckets(s3_regions, seaweed, settings):
    """Buckets of this test only: a restore reads everything in a region."""
    storages = dict(settings.STORAGES)
    for region, server in seaweed.items():
        bucket = f"restore-{region[:3]}-{uuid.uuid4().hex[:8]}"
        server.client().create_bucket(Bucket=bucket)
        storages[region] = {**storages[region], "OPTIONS": {**storages[region]["OPTIONS"], "bucket_name": bucket}}
    settings.STORAGES = storages
    keys._exported.clear()
    yield {region: storages[region]["OPTIONS"]["bucket_name"] for region in seaweed}
    keys._exported.clear()


def _wipe_index(tenant):
    """Delete every archive row of the clinic (as if the database were lost); clinics stay."""
    models = [m for m in apps.get_app_config("archive").get_models() if hasattr(m, "unscoped")]
    for _ in range(len(models) + 1):
        left = False
        for model in models:
            try:
                model.unscoped.filter(tenant=tenant).delete()
            except (ProtectedError, RestrictedError):
                left = True
        if not left:
            return
    raise AssertionError("could not wipe the archive index")


def test_restore_from_secondary_alone(tenant, fresh_buckets, seaweed, tier1):
    originals = {}
    for ds in [*make_ct_series(2), *make_ct_series(1, patient_name="Roe^Richard", patient_id="P2")]:
        originals[ds.SOPInstanceUID] = to_bytes(ds)
        assert ingest_bytes(tenant, originals[ds.SOPInstanceUID]).ok
    keys.data_key_rotate(tenant=tenant)  # objects under two key versions
    late = make_ct_series(1, seed=3)[0]
    originals[late.SOPInstanceUID] = to_bytes(late)
    ingest_bytes(tenant, originals[late.SOPInstanceUID])
    for row in Outbox.objects.for_tenant(tenant):
        assert pipeline.outbox_drive_inline(row.pk)

    # Disaster: the index, tier 1 and the whole primary region are gone.
    _wipe_index(tenant)
    for path in sorted(tier1.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    primary = seaweed["primary"].client()
    for item in primary.list_objects_v2(Bucket=fresh_buckets["primary"]).get("Contents", []):
        primary.delete_object(Bucket=fresh_buckets["primary"], Key=item["Key"])
    assert not Instance.objects.for_tenant(tenant).exists()

    out = StringIO()
    call_command("restore_from_region", "secondary", stdout=out)
    assert "restore: 4/4 objects, 4 restored" in out.getvalue()

    restored = {i.sop_instance_uid: i for i in Instance.objects.for_tenant(tenant)}
    assert set(restored) == set(originals)
    status = storage_status(tenant=tenant)
    assert (status["instances"], status["primary_verified"], status["secondary_verified"]) == (4, 4, 4)
    for uid, instance in restored.items():
        tier1_path(instance.storage_key).unlink()  # read back through the rebuilt primary
        with open_instance(instance) as fh:
            assert fh.read() == originals[uid]
    assert {s.patient_name for s in Instance.objects.for_tenant(tenant)[0].study.__class__.objects
            .for_tenant(tenant)} == {"Doe^Jane", "Roe^Richard"}

    again = StringIO()
    call_command("restore_from_region", "secondary", stdout=again)
    assert "0 restored, 4 already indexed" in again.getvalue()
    assert Instance.objects.for_tenant(tenant).count() == 4


def test_restore_with_the_wrong_master_key_restores_nothing(tenant, fresh_buckets, settings):
    import base64
    import os

    ingest_bytes(tenant, to_bytes(make_ct_series(1)[0]))
    assert pipeline.outbox_drive_inline(Outbox.objects.for_tenant(tenant).get().pk)
    _wipe_index(tenant)
    settings.CLOUDPACS_MASTER_KEY = base64.b64encode(os.urandom(32)).decode()
    keys.master_key.cache_clear()
    with pytest.raises(keys.KeyUnavailable, match="CLOUDPACS_MASTER_KEY"):
        call_command("restore_from_region", "secondary", stdout=StringIO())
    assert not Instance.objects.for_tenant(tenant).exists()


def test_restore_keeps_deleted_studies_gone(tenant, owner, make_member, fresh_buckets, monkeypatch,
                                            django_capture_on_commit_callbacks):
    """A study deleted by two admins whose objects a region still holds (its purge has not
    finished there) does not come back with a restore."""
    from archive.models import Study
    from archive.retention import purge
    from archive.retention.deletion import deletion_request_approve, deletion_request_create
    from archive.retention.models import DeletionRequest, StudyTombstone
    from tenants import roles
    from tenants.audit import Actor

    kept, gone = make_ct_series(1, patient_id="KEEP"), make_ct_series(2, patient_id="GONE")
    for ds in [*kept, *gone]:
        assert ingest_bytes(tenant, to_bytes(ds)).ok
    for row in Outbox.objects.for_tenant(tenant):
        assert pipeline.outbox_drive_inline(row.pk)
    # The regions are unreachable for the purge: the objects stay in both.
    monkeypatch.setattr(purge, "storage_keys_delete", lambda keys: list(keys))
    study = Study.objects.for_tenant(tenant).get(study_instance_uid=gone[0].StudyInstanceUID)
    approver = make_member(tenant, roles.ADMIN)  # a member before the request: may approve it
    request = deletion_request_create(tenant=tenant, study=study, user=owner, reason="duplicate upload",
                                      override_retention=True, actor=Actor.system("test"))
    with django_capture_on_commit_callbacks(execute=True):
        deletion_request_approve(tenant=tenant, request_id=request.pk, user=approver,
                                 actor=Actor.system("test"))
    assert StudyTombstone.objects.for_tenant(tenant).get().objects_purged_at is None

    # The index is lost; the deletion records survive (they are part of what a restore reads).
    tombstones = list(StudyTombstone.objects.for_tenant(tenant).values())
    requests = list(DeletionRequest.objects.for_tenant(tenant).values())
    _wipe_index(tenant)
    DeletionRequest.unscoped.bulk_create([DeletionRequest(**r) for r in requests])
    StudyTombstone.unscoped.bulk_create([StudyTombstone(**t) for t in tombstones])

    out = StringIO()
    call_command("restore_from_region", "secondary", stdout=out)
    assert "1 restored" in out.getvalue() and "2 of deleted studies kept gone" in out.getvalue()
    assert {i.study.patient_identifier for i in Instance.objects.for_tenant(tenant)} == {"KEEP"}
