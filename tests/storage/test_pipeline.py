"""The pipeline's steps run in this process against two real SeaweedFS regions."""

import base64
import hashlib
import io
import json
import zlib
from io import StringIO

import pytest
from botocore.exceptions import ClientError
from django.core.management import call_command

from archive.outbox.models import Outbox
from archive.outbox.services import outbox_advance_many
from archive.storage import pipeline
from archive.storage.models import InstanceCopy
from archive.storage.reader import open_instance
from archive.storage.selectors import instance_copies_summary
from archive.storage.tier1 import tier1_path
from cloudpacs.objectstore.objects import ObjectCorrupt, object_keys, object_open
from tests.archive.test_services_ingest import ingest_bytes
from tests.dicom_factory import make_ct_series, to_bytes
from tests.servers import free_port

NAME = "Confidential^Patricia"


def ingest(tenant, n=2, **kwargs):
    datasets = make_ct_series(n, patient_name=NAME, **kwargs)
    return [ingest_bytes(tenant, to_bytes(ds)).instance for ds in datasets]


def drive_all(tenant):
    for row in Outbox.objects.for_tenant(tenant).filter(kind="archive").filter(done_at=None):
        assert pipeline.outbox_drive_inline(row.pk)


def test_both_regions_get_verified_encrypted_copies(tenant, s3_regions, seaweed):
    instances = ingest(tenant)
    drive_all(tenant)
    assert not Outbox.objects.for_tenant(tenant).filter(kind="archive").filter(done_at=None).exists()
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
    row = Outbox.objects.for_tenant(tenant).filter(kind="archive").get()
    assert pipeline.outbox_drive_inline(row.pk)
    before = list(InstanceCopy.objects.for_tenant(tenant).values_list("region", "cipher_sha256", "attempts"))
    for region in ("primary", "secondary"):
        pipeline.copy_upload(instance, region)
    assert pipeline.archive_rows([row]) == {row.pk: True}  # a redelivered message
    after = list(InstanceCopy.objects.for_tenant(tenant).values_list("region", "cipher_sha256", "attempts"))
    assert before == after


def test_one_message_is_archived_in_a_bounded_number_of_queries(tenant, s3_regions,
                                                                 django_assert_max_num_queries):
    ingest(tenant, 12)
    rows = list(Outbox.objects.for_tenant(tenant).filter(kind="archive").filter(done_at=None))
    # The rows' state is loaded and recorded per batch, not per instance: the pipeline used
    # to run five steps and five outbox advances per instance, each with its own queries.
    with django_assert_max_num_queries(12):
        results = outbox_advance_many([row.pk for row in rows])
    assert results == {row.pk: True for row in rows}
    assert InstanceCopy.objects.for_tenant(tenant).filter(state="verified").count() == 24


def test_the_upload_threads_open_no_connections_of_their_own(tenant, s3_regions, monkeypatch):
    """A batch's uploads (and the key documents' look-ups) go through each region's client
    shared by the process: no thread builds a boto3 session of its own. A profile of a
    fresh worker found every pool thread building one per region, for the upload and for
    the look-up alike (`_s3()` opened one just to ask whether the storage was S3)."""
    import threading

    from archive.storage import keys
    from cloudpacs.objectstore.s3 import RegionS3Storage

    made = []
    create = RegionS3Storage._create_session

    def counting(self):
        made.append(threading.current_thread().name)
        return create(self)

    monkeypatch.setattr(RegionS3Storage, "_create_session", counting)
    monkeypatch.setattr(keys, "_exported", set())  # the key documents are looked up again
    ingest(tenant, 12)
    rows = list(Outbox.objects.for_tenant(tenant).filter(kind="archive").filter(done_at=None))
    assert outbox_advance_many([row.pk for row in rows]) == {row.pk: True for row in rows}
    assert not [name for name in made if name.startswith("archive")]
    assert len(made) <= 2 + 2  # a shared client per region, and the key documents' first put


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
    row = Outbox.objects.for_tenant(tenant).filter(kind="archive").filter(subject_id=instances[0].pk).get()
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
    row = Outbox.objects.for_tenant(tenant).filter(kind="archive").get()
    _primary_endpoint(settings, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with pytest.raises(Exception):  # noqa: B017 - any storage error; the task layer retries
        pipeline.outbox_drive_inline(row.pk)
    copy = InstanceCopy.objects.for_tenant(tenant).get(region="primary")
    assert copy.state == "failed" and "upload" in copy.last_error
    row.refresh_from_db()
    assert row.done_at is None and row.last_error
    # The healthy region does not wait for the other: it got its copy from tier 1.
    assert InstanceCopy.objects.for_tenant(tenant).get(region="secondary").state == "verified"
    _primary_endpoint(settings, seaweed["primary"].endpoint)
    assert pipeline.outbox_drive_inline(row.pk)


def _corrupting(monkeypatch):
    """Bytes damaged between tier 1 and the region (a fault injected into the sender's
    stream, after the checksum was taken from the tier-1 file)."""
    sealed_open = pipeline._Sealed.open

    def damaged(self):
        data = bytearray(sealed_open(self).read())
        data[-5] ^= 0xFF
        return io.BytesIO(bytes(data))

    monkeypatch.setattr(pipeline._Sealed, "open", damaged)


def test_bytes_damaged_on_the_way_are_refused_by_the_region_and_not_counted(tenant, s3_regions,
                                                                             monkeypatch):
    (instance,) = ingest(tenant, 1)
    row = Outbox.objects.for_tenant(tenant).filter(kind="archive").get()
    _corrupting(monkeypatch)
    with pytest.raises(ClientError, match="BadDigest"):  # SeaweedFS's own checksum check
        pipeline.outbox_drive_inline(row.pk)
    assert set(InstanceCopy.objects.for_tenant(tenant).values_list("state", flat=True)) == {"failed"}
    monkeypatch.undo()
    assert pipeline.outbox_drive_inline(row.pk)
    for copy in InstanceCopy.objects.for_tenant(tenant):
        with object_open(copy.region, instance.storage_key) as stream:
            assert hashlib.sha256(stream.read()).hexdigest() == copy.cipher_sha256


def _sent_checksums(monkeypatch) -> list[dict]:
    """The checksum fields of each PutObject the pipeline sends, and what the store said."""
    from botocore.client import BaseClient

    real_call, seen = BaseClient._make_api_call, []

    def recording(self, operation, params):
        answer = real_call(self, operation, params)
        if operation == "PutObject" and not params["Key"].startswith("_keys/"):
            seen.append({"sent": {k: v for k, v in params.items() if k.startswith("Checksum")},
                         "answered": {k: v for k, v in answer.items() if k.startswith("Checksum")}})
        return answer

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    return seen


def test_an_instance_held_in_memory_is_confirmed_by_crc32_and_a_streamed_one_by_sha256(tenant, s3_regions,
                                                                                     monkeypatch):
    """The bytes checked in memory go with their CRC-32 (SeaweedFS confirms a SHA-256 on a
    slower path); a source read again from a file goes with its SHA-256, so that the store
    confirms exactly the bytes whose SHA-256 was checked. Either way the store echoes it."""
    seen = _sent_checksums(monkeypatch)
    (small,) = ingest(tenant, 1)
    assert pipeline.outbox_drive_inline(Outbox.objects.for_tenant(tenant).filter(kind="archive").get().pk)
    assert len(seen) == 2
    for put in seen:
        assert set(put["sent"]) == {"ChecksumCRC32"}
        assert put["answered"]["ChecksumCRC32"] == put["sent"]["ChecksumCRC32"]
    with object_open("primary", small.storage_key) as stream:
        data = stream.read()
    assert base64.b64decode(seen[0]["sent"]["ChecksumCRC32"]) == zlib.crc32(data).to_bytes(4, "big")
    seen.clear()
    monkeypatch.setattr(pipeline, "IN_MEMORY_MAX", 0)
    InstanceCopy.objects.for_tenant(tenant).update(state="pending")
    pipeline.copy_upload(small, "secondary")
    assert [set(put["sent"]) for put in seen] == [{"ChecksumSHA256"}]
    assert seen[0]["answered"]["ChecksumSHA256"] == seen[0]["sent"]["ChecksumSHA256"]


def test_a_store_that_does_not_check_checksums_is_read_back(tenant, s3_regions, monkeypatch):
    """Stand-in for an S3 store without checksum support (SeaweedFS has it, so the checksum
    is left out of the request): the pipeline then reads the object back and hashes it."""
    from botocore.client import BaseClient

    real_call = BaseClient._make_api_call

    def put_without_checksum(self, operation, params):
        if operation == "PutObject":
            params = {k: v for k, v in params.items() if k not in ("ChecksumSHA256", "ChecksumCRC32")}
        return real_call(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", put_without_checksum)
    (good, bad) = ingest(tenant, 2)
    assert pipeline.outbox_drive_inline(Outbox.objects.for_tenant(tenant).filter(kind="archive").get(subject_id=good.pk).pk)
    _corrupting(monkeypatch)
    with pytest.raises(ObjectCorrupt):
        pipeline.outbox_drive_inline(Outbox.objects.for_tenant(tenant).filter(kind="archive").get(subject_id=bad.pk).pk)
    states = dict(InstanceCopy.objects.for_tenant(tenant).filter(instance=bad).values_list("region", "state"))
    assert states == {"primary": "failed", "secondary": "failed"}


def test_local_folder_regions_of_the_embedded_mode(tenant, settings, tmp_path, monkeypatch):
    from cloudpacs.settings import _region_storage

    for region in ("primary", "secondary"):
        monkeypatch.delenv(f"STORAGE_{region.upper()}_BUCKET", raising=False)
        monkeypatch.setenv(f"STORAGE_{region.upper()}_PATH", str(tmp_path / region))
    settings.STORAGES = {**settings.STORAGES, "primary": _region_storage("primary"),
                         "secondary": _region_storage("secondary")}
    (instance,) = ingest(tenant, 1)
    assert pipeline.outbox_drive_inline(Outbox.objects.for_tenant(tenant).filter(kind="archive").get().pk)
    for region in ("primary", "secondary"):
        stored = (tmp_path / region / instance.storage_key).read_bytes()
        assert NAME.encode() not in stored
    # Uploading again overwrites in place instead of writing a renamed copy.
    InstanceCopy.objects.for_tenant(tenant).filter(region="primary").update(state="pending")
    pipeline.copy_upload(instance, "primary")
    assert sorted(p.name for p in (tmp_path / "primary" / str(tenant.pk)).iterdir()) == [
        instance.storage_key.split("/")[1]]
    # Bytes damaged on the way into a folder are caught by their hash, and leave no file.
    _corrupting(monkeypatch)
    InstanceCopy.objects.for_tenant(tenant).filter(region="secondary").update(state="pending")
    with pytest.raises(ObjectCorrupt):
        pipeline.copy_upload(instance, "secondary")
    assert InstanceCopy.objects.for_tenant(tenant).get(region="secondary").state == "failed"
    assert sorted(p.name for p in (tmp_path / "secondary" / str(tenant.pk)).iterdir()) == [
        instance.storage_key.split("/")[1]]
    # A file a killed writer left half-written is not an object (restore lists objects).
    (tmp_path / "secondary" / str(tenant.pk) / ".put.abc123").write_bytes(b"half")
    assert list(object_keys("secondary", f"{tenant.pk}/")) == [instance.storage_key]


def test_a_large_instance_is_streamed_from_tier1_to_each_region(tenant, s3_regions, monkeypatch):
    """Above IN_MEMORY_MAX the tier-1 file is read from disk for each region instead of
    held in memory (set to 0 here so a small instance takes that path)."""
    monkeypatch.setattr(pipeline, "IN_MEMORY_MAX", 0)
    (instance,) = ingest(tenant, 1)
    assert pipeline.outbox_drive_inline(Outbox.objects.for_tenant(tenant).filter(kind="archive").get().pk)
    for copy in InstanceCopy.objects.for_tenant(tenant):
        assert copy.state == "verified"
        with object_open(copy.region, instance.storage_key) as stream:
            assert hashlib.sha256(stream.read()).hexdigest() == copy.cipher_sha256
    _corrupting(monkeypatch)  # and damage on that path is refused too
    InstanceCopy.objects.for_tenant(tenant).update(state="pending")
    with pytest.raises(ClientError, match="BadDigest"):
        pipeline.copy_upload(instance, "primary")


def test_a_failure_never_overwrites_a_copy_another_worker_verified_meanwhile(tenant, s3_regions, monkeypatch):
    """Worker A loads the row's copies; worker B finishes the row; then A's upload fails.
    A's failure must not turn B's verified copies into failed ones."""
    (instance,) = ingest(tenant, 1)
    row = Outbox.objects.for_tenant(tenant).filter(kind="archive").get()
    real_put, first = pipeline.object_put_checked, []

    def put_after_another_worker_finished(*args, **kwargs):
        if not first:
            first.append(True)
            monkeypatch.setattr(pipeline, "object_put_checked", real_put)
            assert pipeline.outbox_drive_inline(row.pk)  # worker B, start to end
            monkeypatch.setattr(pipeline, "object_put_checked", put_after_another_worker_finished)
        raise ConnectionError("region unreachable")  # worker A's own attempt

    monkeypatch.setattr(pipeline, "object_put_checked", put_after_another_worker_finished)
    assert pipeline.archive_rows([row])[row.pk].__class__ is ConnectionError
    assert dict(InstanceCopy.objects.for_tenant(tenant).values_list("region", "state")) == {
        "primary": "verified", "secondary": "verified"}
    row.refresh_from_db()
    assert row.done_at is not None


def test_a_damaged_tier1_file_does_not_stop_a_copy_from_the_other_region(tenant, s3_regions):
    (instance,) = ingest(tenant, 1)
    pipeline.copy_upload(instance, "primary")
    path = tier1_path(instance.storage_key)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    assert pipeline.outbox_drive_inline(Outbox.objects.for_tenant(tenant).filter(kind="archive").get().pk)
    copies = {c.region: c for c in InstanceCopy.objects.for_tenant(tenant)}
    assert copies["secondary"].state == "verified"
    assert copies["secondary"].cipher_sha256 == copies["primary"].cipher_sha256
    with object_open("secondary", instance.storage_key) as stream:
        assert hashlib.sha256(stream.read()).hexdigest() == copies["primary"].cipher_sha256


def test_a_region_that_is_down_is_tried_once_per_batch(tenant, s3_regions, seaweed, settings, monkeypatch):
    """A batch does not wait out the same connection timeouts once per instance: after the
    first failure the region's other copies are left for the retry; the healthy region
    gets all of them meanwhile."""
    ingest(tenant, 3)
    rows = list(Outbox.objects.for_tenant(tenant).filter(kind="archive"))
    _primary_endpoint(settings, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    attempts = []  # every call that goes to a region: the key document, then the object
    real_put, real_export = pipeline.object_put_checked, pipeline.key_export

    def counting_put(region, *args, **kwargs):
        attempts.append(("put", region))
        return real_put(region, *args, **kwargs)

    def counting_export(*, region, key_id):
        attempts.append(("key", region))
        return real_export(region=region, key_id=key_id)

    monkeypatch.setattr(pipeline, "object_put_checked", counting_put)
    monkeypatch.setattr(pipeline, "key_export", counting_export)
    results = pipeline.archive_rows(rows)
    assert all(isinstance(result, Exception) for result in results.values())
    # The key document (unless this process exported it already) or the first instance's
    # put fails; the other two never reach the primary.
    assert attempts.count(("put", "primary")) <= 1
    assert ("key", "primary") in attempts or ("put", "primary") in attempts
    assert attempts.count(("put", "secondary")) == 3
    states = list(InstanceCopy.objects.for_tenant(tenant).filter(region="primary").values_list("state", "last_error"))
    assert all(state == "failed" for state, _ in states)
    # The key document goes first, before any upload: when it is what fails, no instance
    # is tried; when this process had exported it already, the first instance's put fails.
    failed_at_the_key = ("put", "primary") not in attempts
    assert sum("failed earlier in this batch" in error for _, error in states) == (3 if failed_at_the_key else 2)
    assert set(InstanceCopy.objects.for_tenant(tenant).filter(region="secondary")
               .values_list("state", flat=True)) == {"verified"}
    _primary_endpoint(settings, seaweed["primary"].endpoint)
    assert all(result is True for result in pipeline.archive_rows(rows).values())


@pytest.mark.django_db(transaction=True)  # the deletion's purge runs when its transaction commits
def test_a_deletion_approved_mid_upload_leaves_no_object_behind(tenant, s3_regions, make_member, monkeypatch):
    """The worker has read the instance and is uploading it when the study's deletion is
    approved and purged: the copy it then puts into the region would be kept by nobody.
    The deletion runs inside the first upload call, just before its bytes go (a seam to
    place the race deterministically; every store and both transactions are real)."""
    from archive.retention.deletion import deletion_request_approve, deletion_request_create
    from archive.storage.selectors import storage_status
    from tenants import roles
    from tenants.audit import Actor

    (instance,) = ingest(tenant, 1, study_date="19900101")  # long past retention
    first, second = make_member(tenant, roles.ADMIN), make_member(tenant, roles.OWNER)
    real_put, deleted = pipeline.object_put_checked, []

    def put_after_the_deletion(region, key, *args, **kwargs):
        if not deleted:
            request = deletion_request_create(tenant=tenant, study=instance.study, user=first, reason="wrong patient",
                                              override_retention=True, actor=Actor.system("test"))
            deleted.append(deletion_request_approve(tenant=tenant, request_id=request.pk, user=second,
                                                    actor=Actor.system("test")))
        return real_put(region, key, *args, **kwargs)

    monkeypatch.setattr(pipeline, "object_put_checked", put_after_the_deletion)
    drive_all(tenant)
    assert deleted and storage_status(tenant=tenant)["instances"] == 0
    for region in ("primary", "secondary"):
        assert instance.storage_key not in set(object_keys(region)), region


def test_bucket_side_encryption_is_asked_for_and_given(tenant, s3_regions, seaweed, settings):
    """`STORAGE_*_SSE=AES256` adds the store's own encryption under ours: SeaweedFS does
    SSE-S3, so the copy must come back saying it was encrypted, and still read as stored."""
    from archive.storage.integrity import copy_check

    primary = settings.STORAGES["primary"]
    settings.STORAGES = {**settings.STORAGES, "primary": {**primary, "OPTIONS": {
        **primary["OPTIONS"], "object_parameters": {"ServerSideEncryption": "AES256"}}}}
    (instance,) = ingest(tenant, 1)
    drive_all(tenant)
    server = seaweed["primary"]
    head = server.client().head_object(Bucket=server.bucket, Key=instance.storage_key)
    assert head.get("ServerSideEncryption") == "AES256"
    assert copy_check(instance, "primary").ok
    secondary = seaweed["secondary"]
    plain = secondary.client().head_object(Bucket=secondary.bucket, Key=instance.storage_key)
    assert "ServerSideEncryption" not in plain  # the secondary was not asked
