"""The pipeline's steps run in this process against two real SeaweedFS regions."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from archive.outbox.models import Outbox
from archive.storage import pipeline
from archive.storage.models import InstanceCopy
from archive.storage.reader import open_instance
from archive.storage.selectors import instance_copies_summary
from cloudpacs.objectstore.objects import object_open
from tests.archive.test_services_ingest import ingest_bytes
from tests.dicom_factory import make_ct_series, to_bytes
from tests.servers import free_port

NAME = "Confidential^Patricia"


def ingest(tenant, n=2, **kwargs):
    datasets = make_ct_series(n, patient_name=NAME, **kwargs)
    return [ingest_bytes(tenant, to_bytes(ds)).instance for ds in datasets]


def drive_all(tenant):
    for row in Outbox.objects.for_tenant(tenant).filter(done_at=None):
        assert pipeline.outbox_drive_inline(row.pk)


def test_both_regions_get_verified_encrypted_copies(tenant, s3_regions, seaweed):
    instances = ingest(tenant)
    drive_all(tenant)
    assert not Outbox.objects.for_tenant(tenant).filter(done_at=None).exists()
    for instance in instances:
        copies = {c.region: c for c in InstanceCopy.objects.for_tenant(tenant).filter(instance=instance)}
        assert {r: c.state for r, c in copies.items()} == {"primary": "verified", "secondary": "verified"}
        # The secondary holds the primary's bytes: one ciphertext, one checksum.
        assert copies["primary"].cipher_sha256 == copies["secondary"].cipher_sha256
        with open_instance(instance) as fh:
            plain = fh.read()
        for server in seaweed.values():
            stored = server.client().get_object(Bucket=server.bucket, Key=instance.storage_key)["Body"].read()
            assert NAME.encode() not in stored and b"DICM" not in stored
            assert plain[200:264] not in stored
            assert instance.storage_key.startswith(f"{tenant.pk}/")  # no PHI in the key


def test_steps_are_idempotent(tenant, s3_regions):
    (instance,) = ingest(tenant, 1)
    row = Outbox.objects.for_tenant(tenant).get()
    assert pipeline.outbox_drive_inline(row.pk)
    before = list(InstanceCopy.objects.for_tenant(tenant).values_list("region", "cipher_sha256", "attempts"))
    for region in ("primary", "secondary"):
        pipeline.copy_upload(instance, region)
        assert pipeline.copy_verify(instance, region)
    after = list(InstanceCopy.objects.for_tenant(tenant).values_list("region", "cipher_sha256", "attempts"))
    assert before == after


def test_storage_status_json(tenant, s3_regions):
    ingest(tenant, 3)
    out = StringIO()
    call_command("storage_status", tenant.slug, "--json", stdout=out)
    status = json.loads(out.getvalue())
    assert (status["instances"], status["primary_verified"], status["secondary_verified"]) == (3, 0, 0)
    assert status["oldest_unreplicated_seconds"] >= 0
    drive_all(tenant)
    out = StringIO()
    call_command("storage_status", tenant.slug, "--json", stdout=out)
    status = json.loads(out.getvalue())
    assert (status["instances"], status["primary_verified"], status["secondary_verified"]) == (3, 3, 3)
    assert status["oldest_unreplicated_seconds"] is None


def test_storage_status_unknown_clinic(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("storage_status", "nope", "--json")


def test_copies_summary_for_study_page(tenant, s3_regions):
    instances = ingest(tenant, 2)
    row = Outbox.objects.for_tenant(tenant).filter(subject_id=instances[0].pk).get()
    pipeline.outbox_drive_inline(row.pk)
    summary = instance_copies_summary(instances[0].study)
    states = {r["id"]: (r["primary"], r["secondary"]) for r in summary["instances"]}
    assert states == {instances[0].pk: ("verified", "verified"), instances[1].pk: ("pending", "pending")}
    assert summary["counts"]["primary"] == {"verified": 1, "pending": 1}
    assert summary["all_verified"] is False


def _primary_endpoint(settings, endpoint):
    primary = settings.STORAGES["primary"]
    settings.STORAGES = {**settings.STORAGES, "primary": {
        **primary, "OPTIONS": {**primary["OPTIONS"], "endpoint_url": endpoint}}}


def test_a_failing_region_records_the_error_and_retries(tenant, s3_regions, seaweed, settings):
    (instance,) = ingest(tenant, 1)
    row = Outbox.objects.for_tenant(tenant).get()
    _primary_endpoint(settings, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with pytest.raises(Exception):  # noqa: B017 - any storage error; the task layer retries
        pipeline.step_run(row.pk, pipeline.UPLOAD, "primary")
    copy = InstanceCopy.objects.for_tenant(tenant).get(region="primary")
    assert copy.state == "failed" and "upload" in copy.last_error
    row.refresh_from_db()
    assert row.done_at is None and row.last_error
    assert not InstanceCopy.objects.for_tenant(tenant).filter(region="secondary").exists()
    _primary_endpoint(settings, seaweed["primary"].endpoint)
    assert pipeline.outbox_drive_inline(row.pk)


def test_corrupt_upload_fails_verification_then_is_uploaded_again(tenant, s3_regions, seaweed):
    (instance,) = ingest(tenant, 1)
    pipeline.copy_upload(instance, "primary")
    server = seaweed["primary"]
    blob = bytearray(server.client().get_object(Bucket=server.bucket, Key=instance.storage_key)["Body"].read())
    blob[-5] ^= 0xFF
    server.client().put_object(Bucket=server.bucket, Key=instance.storage_key, Body=bytes(blob))
    assert pipeline.copy_verify(instance, "primary") is False
    copy = InstanceCopy.objects.for_tenant(tenant).get(region="primary")
    assert copy.state == "pending" and "corrupt" in copy.last_error
    assert pipeline.outbox_drive_inline(Outbox.objects.for_tenant(tenant).get().pk)
    with object_open("primary", instance.storage_key) as stream:
        assert stream.read() != bytes(blob)


def test_local_folder_regions_of_the_embedded_mode(tenant, settings, tmp_path, monkeypatch):
    from cloudpacs.settings import _region_storage

    for region in ("primary", "secondary"):
        monkeypatch.delenv(f"STORAGE_{region.upper()}_BUCKET", raising=False)
        monkeypatch.setenv(f"STORAGE_{region.upper()}_PATH", str(tmp_path / region))
    settings.STORAGES = {**settings.STORAGES, "primary": _region_storage("primary"),
                         "secondary": _region_storage("secondary")}
    (instance,) = ingest(tenant, 1)
    assert pipeline.outbox_drive_inline(Outbox.objects.for_tenant(tenant).get().pk)
    for region in ("primary", "secondary"):
        stored = (tmp_path / region / instance.storage_key).read_bytes()
        assert NAME.encode() not in stored
    # Uploading again overwrites in place instead of writing a renamed copy.
    InstanceCopy.objects.for_tenant(tenant).filter(region="primary").update(state="pending")
    pipeline.copy_upload(instance, "primary")
    assert sorted(p.name for p in (tmp_path / "primary" / str(tenant.pk)).iterdir()) == [
        instance.storage_key.split("/")[1]]
