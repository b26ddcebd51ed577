"""A clinic's opt-in lossless compression: after both regions hold an instance received
uncompressed, it is re-encoded, checked pixel for pixel, put into both regions and swapped
in; the superseded objects go. Real SeaweedFS regions; pydicom's real CT and MR test files
and the synthetic CT; the worker's handlers run in this process (one test runs a real
Celery worker)."""

import hashlib
import io

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, JPEGLSLossless

from archive.ingest.service import Outcome
from archive.models import Instance
from archive.outbox.models import Outbox
from archive.outbox.services import outbox_advance_many
from archive.storage.compression import COMPRESS, DROP, compression_set, compression_summary
from archive.storage.integrity import copy_check
from archive.storage.models import InstanceCopy
from archive.storage.reader import open_instance
from archive.storage.tier1 import tier1_path
from cloudpacs.objectstore.objects import object_exists, object_open
from tenants.audit import Actor, AuditEvent
from tests.archive.test_services_ingest import ingest_bytes
from tests.dicom_factory import make_ct_series, to_bytes
from tests.servers import free_port, wait_for

ADMIN = Actor.system("test")


@pytest.fixture(autouse=True)
def no_drop_grace(settings):
    settings.STORAGE_DROP_GRACE_SECONDS = 0  # tests read the result at once; the grace has its own test


def _file_bytes(name: str) -> bytes:
    with open(get_testdata_file(name), "rb") as fh:
        return fh.read()


def _drive(tenant, kind: str) -> dict:
    rows = list(Outbox.objects.for_tenant(tenant).filter(kind=kind, done_at=None).values_list("pk", flat=True))
    return outbox_advance_many(rows)


def _archive_and_compress(tenant) -> None:
    assert all(r is True for r in _drive(tenant, "archive").values())
    assert all(r is True for r in _drive(tenant, COMPRESS).values())


def _pixels(data: bytes) -> np.ndarray:
    return pydicom.dcmread(io.BytesIO(data)).pixel_array


@pytest.mark.parametrize("syntax", [JPEGLSLossless, JPEG2000Lossless])
def test_real_ct_and_mr_are_reencoded_bit_exact_in_both_regions(tenant, s3_regions, syntax):
    compression_set(tenant=tenant, syntax=syntax, actor=ADMIN)
    received = {"CT_small": _file_bytes("CT_small.dcm"), "MR_small": _file_bytes("MR_small.dcm"),
                "synthetic CT": to_bytes(make_ct_series(1, 512, 512)[0])}
    results = {name: ingest_bytes(tenant, data) for name, data in received.items()}
    before = {name: r.instance.storage_key for name, r in results.items()}
    _archive_and_compress(tenant)
    for name, data in received.items():
        instance = Instance.objects.for_tenant(tenant).get(pk=results[name].instance.pk)
        assert instance.transfer_syntax_uid == syntax, name
        assert instance.sop_instance_uid == pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID
        assert (instance.original_size_bytes, instance.original_transfer_syntax_uid) == (
            len(data), ExplicitVRLittleEndian)
        assert instance.size_bytes < len(data)
        for region in ("primary", "secondary"):
            assert copy_check(instance, region).ok, (name, region)
        with open_instance(instance) as fh:
            stored = fh.read()
        assert np.array_equal(_pixels(stored), _pixels(data)), name
        # Everything but the pixel data's encoding is as received.
        as_stored, as_sent = pydicom.dcmread(io.BytesIO(stored)), pydicom.dcmread(io.BytesIO(data))
        del as_stored.PixelData, as_sent.PixelData
        assert as_stored == as_sent, name
    pixel_ratio = {}
    for name, r in results.items():
        with open_instance(Instance.objects.for_tenant(tenant).get(pk=r.instance.pk)) as fh:
            stored = pydicom.dcmread(fh)
        pixel_ratio[name] = len(pydicom.dcmread(io.BytesIO(received[name])).PixelData) / len(stored.PixelData)
    # The real CT's pixel data (the field's figure is 1.8 to 2.8; its 7 kB header is not
    # compressed, so the whole file shrinks less: see the README).
    assert pixel_ratio["CT_small"] >= 2.0, pixel_ratio
    # The superseded objects go once their rows run.
    assert all(object_exists("primary", key) for key in before.values())
    assert all(r is True for r in _drive(tenant, DROP).values())
    for key in before.values():
        assert not object_exists("primary", key) and not object_exists("secondary", key)
        assert not tier1_path(key).exists()
    event = AuditEvent.objects.for_tenant(tenant).get(action="storage.compressed")
    assert event.detail["compressed"] == 3 and event.detail["saved_bytes"] > 0
    summary = compression_summary(tenant=tenant)
    assert summary["received"] == sum(map(len, received.values())) > summary["stored"]


def test_a_resend_of_the_received_bytes_is_the_same_instance(tenant, s3_regions):
    compression_set(tenant=tenant, syntax=JPEGLSLossless, actor=ADMIN)
    data = _file_bytes("CT_small.dcm")
    ingest_bytes(tenant, data)
    _archive_and_compress(tenant)
    assert Instance.objects.for_tenant(tenant).get().transfer_syntax_uid == JPEGLSLossless
    assert ingest_bytes(tenant, data).outcome == Outcome.ALREADY_PRESENT


def test_served_as_stored_or_decoded_as_asked(client, tenant, make_token, s3_regions):
    compression_set(tenant=tenant, syntax=JPEGLSLossless, actor=ADMIN)
    data = _file_bytes("CT_small.dcm")
    ds = pydicom.dcmread(io.BytesIO(data))
    ingest_bytes(tenant, data)
    _archive_and_compress(tenant)
    url = f"/t/acme/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    token = make_token(tenant, scopes=("read",))
    for accept, syntax in (('multipart/related; type="application/dicom"; transfer-syntax=*', JPEGLSLossless),
                           ('multipart/related; type="application/dicom"', ExplicitVRLittleEndian)):
        response = client.get(url, HTTP_ACCEPT=accept, HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 200
        body = b"".join(response.streaming_content)
        part = body[body.index(b"\r\n\r\n") + 4:body.rindex(b"\r\n--")]
        served = pydicom.dcmread(io.BytesIO(part))
        assert served.file_meta.TransferSyntaxUID == syntax
        assert np.array_equal(served.pixel_array, ds.pixel_array)


def test_what_is_not_uncompressed_or_not_smaller_is_left_alone(tenant, s3_regions):
    compression_set(tenant=tenant, syntax=JPEGLSLossless, actor=ADMIN)
    compressed = ingest_bytes(tenant, _file_bytes("MR_small_jpeg_ls_lossless.dcm")).instance
    noise = make_ct_series(1, 64, 64)[0]
    noise.PixelData = np.random.default_rng(1).integers(0, 65535, (64, 64), dtype=np.uint16).tobytes()
    noise.BitsStored, noise.HighBit = 16, 15
    noisy = ingest_bytes(tenant, to_bytes(noise)).instance
    assert all(r is True for r in _drive(tenant, "archive").values())
    queued = set(Outbox.objects.for_tenant(tenant).filter(kind=COMPRESS).values_list("subject_id", flat=True))
    assert queued == {noisy.pk}  # received compressed: never queued
    assert all(r is True for r in _drive(tenant, COMPRESS).values())
    after = Instance.objects.for_tenant(tenant).get(pk=noisy.pk)
    assert (after.storage_key, after.sha256, after.original_sha256) == (noisy.storage_key, noisy.sha256, "")
    assert AuditEvent.objects.for_tenant(tenant).get(action="storage.compressed").detail["kept_why"] == [
        "not smaller"]
    assert Instance.objects.for_tenant(tenant).get(pk=compressed.pk).original_sha256 == ""


def test_off_by_default_nothing_is_queued(tenant, s3_regions):
    ingest_bytes(tenant, _file_bytes("CT_small.dcm"))
    assert all(r is True for r in _drive(tenant, "archive").values())
    assert not Outbox.objects.for_tenant(tenant).filter(kind=COMPRESS).exists()


def test_a_region_down_mid_way_changes_nothing_and_the_row_is_retried(tenant, s3_regions, settings, seaweed):
    from botocore.config import Config

    compression_set(tenant=tenant, syntax=JPEGLSLossless, actor=ADMIN)
    instance = ingest_bytes(tenant, _file_bytes("CT_small.dcm")).instance
    assert all(r is True for r in _drive(tenant, "archive").values())
    keys_before = set(_keys("primary"))
    good = settings.STORAGES["secondary"]
    settings.STORAGES = {**settings.STORAGES, "secondary": {**good, "OPTIONS": {
        **good["OPTIONS"], "endpoint_url": f"http://127.0.0.1:{free_port()}",
        "client_config": Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 1})}}}
    results = _drive(tenant, COMPRESS)
    assert all(isinstance(r, Exception) for r in results.values())
    after = Instance.objects.for_tenant(tenant).get(pk=instance.pk)
    assert (after.storage_key, after.transfer_syntax_uid) == (instance.storage_key, instance.transfer_syntax_uid)
    assert set(_keys("primary")) == keys_before  # the primary's new copy was taken away again
    settings.STORAGES = {**settings.STORAGES, "secondary": good}
    assert all(r is True for r in _drive(tenant, COMPRESS).values())
    assert Instance.objects.for_tenant(tenant).get(pk=instance.pk).transfer_syntax_uid == JPEGLSLossless


def _keys(region):
    from cloudpacs.objectstore.objects import object_keys

    return [k for k in object_keys(region) if not k.startswith("_keys/")]


def test_storage_page_turns_it_on_audited_and_shows_the_bytes(client, tenant, make_member, login, s3_regions):
    from tenants import roles

    login(make_member(tenant, roles.ADMIN))
    ingest_bytes(tenant, _file_bytes("CT_small.dcm"))
    page = client.get("/t/acme/settings/storage/")
    assert page.status_code == 200 and b"Lossless compression" in page.content
    answer = client.post("/t/acme/settings/storage/", {"compression_syntax": JPEGLSLossless, "cold_after_days": ""})
    assert answer.status_code == 302
    event = AuditEvent.objects.for_tenant(tenant).get(action="storage.policy_changed")
    assert event.detail == {"changes": {"compression_syntax": ["", JPEGLSLossless]}}
    # A lossy syntax is not on offer.
    assert client.post("/t/acme/settings/storage/", {"compression_syntax": "1.2.840.10008.1.2.4.50"}).status_code == 400
    _archive_and_compress(tenant)
    page = client.get("/t/acme/settings/storage/")
    assert b"1 re-encoded losslessly" in page.content


def test_the_storage_page_is_for_settings_managers(client, tenant, make_member, login):
    from tenants import roles

    login(make_member(tenant, roles.VIEWER))
    assert client.get("/t/acme/settings/storage/").status_code == 403
    assert client.post("/t/acme/settings/storage/", {"compression_syntax": JPEGLSLossless}).status_code == 403


@pytest.mark.worker
def test_a_real_worker_compresses_after_archiving(tenant, start_worker):
    compression_set(tenant=tenant, syntax=JPEGLSLossless, actor=ADMIN)
    start_worker(STORAGE_DROP_GRACE_SECONDS="0")
    instance = ingest_bytes(tenant, _file_bytes("CT_small.dcm")).instance
    from archive.outbox.services import outbox_publish_gathered

    outbox_publish_gathered()

    def done():
        row = Instance.objects.for_tenant(tenant).get(pk=instance.pk)
        return (row.transfer_syntax_uid == JPEGLSLossless
                and InstanceCopy.objects.for_tenant(tenant).filter(instance=row, state="verified").count() == 2
                and not Outbox.objects.for_tenant(tenant).filter(done_at=None).exists())

    wait_for(done, timeout=90, interval=0.5, what="the worker to archive, compress and drop the original")
    assert not object_exists("primary", instance.storage_key)


def test_an_encoding_that_does_not_decode_to_the_same_pixels_is_never_stored(tenant, s3_regions, monkeypatch):
    """The check that guards every replacement. No encoder here is broken, so one is made
    to be: it encodes an image one pixel off (a stand-in, said so, for a codec bug)."""
    real = pydicom.Dataset.compress

    def one_pixel_off(self, *args, **kwargs):
        pixels = self.pixel_array.copy()
        pixels.flat[0] ^= 1
        self.PixelData = pixels.tobytes()
        return real(self, *args, **kwargs)

    compression_set(tenant=tenant, syntax=JPEGLSLossless, actor=ADMIN)
    instance = ingest_bytes(tenant, _file_bytes("CT_small.dcm")).instance
    assert all(r is True for r in _drive(tenant, "archive").values())
    monkeypatch.setattr(pydicom.Dataset, "compress", one_pixel_off)
    assert all(r is True for r in _drive(tenant, COMPRESS).values())  # kept as received, for good
    after = Instance.objects.for_tenant(tenant).get(pk=instance.pk)
    assert (after.storage_key, after.sha256, after.transfer_syntax_uid) == (
        instance.storage_key, instance.sha256, instance.transfer_syntax_uid)
    assert AuditEvent.objects.for_tenant(tenant).get(action="storage.compressed").detail["kept_why"] == [
        "not bit-exact"]


def test_the_original_objects_stay_for_the_grace_period(tenant, s3_regions, settings):
    """A reader that opened the original just before the swap (a series streaming, an
    export) must be able to finish: the superseded objects go only after the grace."""
    compression_set(tenant=tenant, syntax=JPEGLSLossless, actor=ADMIN)
    before = ingest_bytes(tenant, _file_bytes("CT_small.dcm")).instance
    _archive_and_compress(tenant)
    settings.STORAGE_DROP_GRACE_SECONDS = 3600
    assert list(_drive(tenant, DROP).values()) == [False]  # under way: dropped later
    assert object_exists("primary", before.storage_key)
    settings.STORAGE_DROP_GRACE_SECONDS = 0
    assert list(_drive(tenant, DROP).values()) == [True]
    assert not object_exists("primary", before.storage_key)


def test_an_archive_run_that_held_the_original_does_not_undo_a_swap(tenant, s3_regions, monkeypatch):
    """The worker is uploading the original when a compression swaps the instance to its new
    object: what it then records must not overwrite the new object's copy rows, and what it
    uploaded under the old key must not stay behind. The swap runs inside the first upload
    call (a seam that places the race; every store and transaction is real)."""
    from archive.storage import pipeline
    from archive.storage.compression import compress_instance
    from cloudpacs.objectstore.objects import object_keys

    compression_set(tenant=tenant, syntax=JPEGLSLossless, actor=ADMIN)
    original = ingest_bytes(tenant, _file_bytes("CT_small.dcm")).instance
    real_put, swapped = pipeline.object_put_checked, []

    def put_after_the_swap(region, key, *args, **kwargs):
        if not swapped:
            swapped.append(compress_instance(Instance.objects.for_tenant(tenant).get(pk=original.pk), JPEGLSLossless))
        return real_put(region, key, *args, **kwargs)

    monkeypatch.setattr(pipeline, "object_put_checked", put_after_the_swap)
    _drive(tenant, "archive")
    assert swapped[0].compressed
    now = Instance.objects.for_tenant(tenant).get(pk=original.pk)
    assert now.storage_key != original.storage_key
    for region in ("primary", "secondary"):
        assert copy_check(now, region).ok, region
        assert original.storage_key not in set(object_keys(region)), region
    for copy in InstanceCopy.objects.for_tenant(tenant).filter(instance=now):  # the rows describe the new object
        stored = object_open(copy.region, now.storage_key).read()
        assert (copy.state, copy.cipher_sha256) == ("verified", hashlib.sha256(stored).hexdigest())
