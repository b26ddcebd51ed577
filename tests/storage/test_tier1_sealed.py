"""Tier 1 holds only ciphertext (the clinic's data key, the regions' format); reads seek
into it segment by segment; the pipeline uploads it as it is; the leftovers sweep removes
what no index row or live process owns and seals tier-1 files left in plaintext."""

import hashlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archive.models import Instance
from archive.outbox.models import Outbox
from archive.storage import pipeline
from archive.storage.keys import active_data_key
from archive.storage.leftovers import leftovers_sweep
from archive.storage.models import InstanceCopy
from archive.storage.reader import open_instance
from archive.storage.scratch import scratch_dir
from archive.storage.tier1 import tier1_path, tier1_seal
from cloudpacs.objectstore import crypto
from tests.archive.stow_helpers import files_under
from tests.archive.test_services_ingest import ingest_bytes
from tests.dicom_factory import make_ct_series, to_bytes
from tests.servers import REPO

NAME = "Confidential^Patricia"
KEY = os.urandom(32)
SEG = 1024


def _phi(ds) -> list[bytes]:
    return [NAME.encode(), str(ds.StudyInstanceUID).encode(), str(ds.SOPInstanceUID).encode(), b"DICM"]


def test_tier1_holds_ciphertext_that_reads_back_whole(tenant):
    ds = make_ct_series(1, patient_name=NAME)[0]
    data = to_bytes(ds)
    instance = ingest_bytes(tenant, data).instance
    stored = tier1_path(instance.storage_key).read_bytes()
    assert not [marker for marker in _phi(ds) if marker in stored]
    assert crypto.read_key_id(io.BytesIO(stored)) == active_data_key(tenant=tenant)[0]
    with open_instance(instance) as fh:
        assert fh.read() == data
        fh.seek(200)
        assert fh.read(64) == data[200:264]
        assert fh.seek(0, os.SEEK_END) == len(data)


@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1, 7 * SEG + 3])
def test_decrypting_reader_seeks_and_reads_like_the_plaintext(size):
    data = os.urandom(size)
    blob = b"".join(crypto.encrypt_chunks(io.BytesIO(data), data_key=KEY, key_id=1, segment_size=SEG))
    reader = crypto.DecryptingReader(io.BytesIO(blob), key_lookup=lambda kid: KEY)
    assert reader.size == size and reader.read() == data and reader.read(5) == b""
    for start in sorted({0, 1, SEG - 1, SEG, SEG + 5, 3 * SEG - 2, size, size + 3}):
        for n in (0, 1, SEG, 2 * SEG + 7, -1):
            reader.seek(start)
            got = reader.read(n)
            assert got == (data[start:] if n < 0 else data[start:start + n])
            assert reader.tell() == start + len(got)
    if size >= 3:
        reader.seek(-3, os.SEEK_END)
        assert reader.read() == data[-3:]


@pytest.mark.parametrize("damage", ["flip", "cut_at_segment", "drop_tag"])
def test_decrypting_reader_refuses_altered_or_truncated_files(damage):
    data = os.urandom(4 * SEG + 100)
    blob = bytearray(b"".join(crypto.encrypt_chunks(io.BytesIO(data), data_key=KEY, key_id=1, segment_size=SEG)))
    sealed = SEG + crypto.TAG_SIZE
    if damage == "flip":
        blob[crypto.HEADER_SIZE + 2 * sealed + 5] ^= 1
    elif damage == "cut_at_segment":
        blob = blob[:crypto.HEADER_SIZE + 3 * sealed]  # a whole segment short: the new last fails
    else:
        blob = blob[:-crypto.TAG_SIZE]
    reader = crypto.DecryptingReader(io.BytesIO(bytes(blob)), key_lookup=lambda kid: KEY)
    with pytest.raises(crypto.DecryptionError):
        reader.read()


def test_pipeline_uploads_the_tier1_ciphertext_as_it_is(tenant, s3_regions, seaweed):
    instance = ingest_bytes(tenant, to_bytes(make_ct_series(1, patient_name=NAME)[0])).instance
    sealed = tier1_path(instance.storage_key).read_bytes()
    assert pipeline.outbox_drive_inline(Outbox.objects.for_tenant(tenant).filter(kind="archive").get(subject_id=instance.pk).pk)
    for region, server in seaweed.items():
        stored = server.client().get_object(Bucket=server.bucket, Key=instance.storage_key)["Body"].read()
        assert stored == sealed
        copy = InstanceCopy.objects.for_tenant(tenant).get(instance=instance, region=region)
        assert copy.cipher_sha256 == hashlib.sha256(sealed).hexdigest()
        assert copy.key_id == crypto.read_key_id(io.BytesIO(sealed))


def test_pipeline_refuses_a_tier1_file_that_no_longer_matches(tenant, s3_regions):
    instance = ingest_bytes(tenant, to_bytes(make_ct_series(1)[0])).instance
    key_id, key = active_data_key(tenant=tenant)
    other = tier1_path("elsewhere/x")
    other.parent.mkdir(parents=True, exist_ok=True)
    other.write_bytes(b"something else entirely")
    tier1_seal(other, instance.storage_key, data_key=key, key_id=key_id)  # right key, wrong content
    with pytest.raises(RuntimeError, match="no longer matches"):
        pipeline.copy_upload(instance, "primary")
    assert InstanceCopy.objects.for_tenant(tenant).get(instance=instance, region="primary").state == "failed"


def _age(path: Path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_sweep_removes_tier1_files_no_instance_owns_after_the_grace(tenant, settings):
    settings.TIER1_ORPHAN_GRACE_SECONDS = 3600
    kept = ingest_bytes(tenant, to_bytes(make_ct_series(1)[0])).instance
    orphan = ingest_bytes(tenant, to_bytes(make_ct_series(1)[0])).instance
    Instance.objects.for_tenant(tenant).filter(pk=orphan.pk).delete()  # as if never committed
    young = ingest_bytes(tenant, to_bytes(make_ct_series(1)[0])).instance
    Instance.objects.for_tenant(tenant).filter(pk=young.pk).delete()
    stray = tier1_path(f"{tenant.pk}/not-ours")
    stray.write_bytes(b"\0" * 300)  # neither sealed with our keys nor DICOM: kept, logged
    plain = tier1_path(f"{tenant.pk}/plain-unindexed")
    plain.write_bytes(b"\0" * 128 + b"DICM" + NAME.encode())
    partial = tier1_path(f"{tenant.pk}/.abc.partial")
    partial.write_bytes(b"half")
    for path in (tier1_path(kept.storage_key), tier1_path(orphan.storage_key), stray, plain, partial):
        _age(path, 7200)
    result = leftovers_sweep()
    assert (result.tier1_orphans, result.tier1_kept_unknown) == (3, 1)
    assert tier1_path(kept.storage_key).exists() and tier1_path(young.storage_key).exists()
    assert not tier1_path(orphan.storage_key).exists() and not plain.exists() and not partial.exists()
    assert stray.exists()


def test_sweep_seals_tier1_files_left_in_plaintext(tenant):
    data = to_bytes(make_ct_series(1, patient_name=NAME)[0])
    instance = ingest_bytes(tenant, data).instance
    path = tier1_path(instance.storage_key)
    path.write_bytes(data)  # as written before tier 1 was encrypted
    _age(path, 7200)
    assert leftovers_sweep().tier1_sealed == 1
    assert NAME.encode() not in path.read_bytes()
    with open_instance(instance) as fh:
        assert fh.read() == data


CHILD = """
import os, sys, django
os.environ["DJANGO_SETTINGS_MODULE"] = "cloudpacs.settings"
django.setup()
from archive.ingest.spool import SpooledFile
spool = SpooledFile()
spool.write(b"half of a data set")
spool.finish()
print(spool.path, flush=True)
sys.stdin.read()
"""


def test_sweep_removes_the_spool_of_a_killed_process_only(settings):
    mine = scratch_dir() / "in-progress.dcm"
    mine.write_bytes(b"a transfer of this live process")
    _age(mine, 10 * 24 * 3600)  # however old: its process is alive
    env = {**os.environ, "INGEST_TMP_DIR": settings.INGEST_TMP_DIR}
    child = subprocess.Popen([sys.executable, "-c", CHILD], cwd=REPO, env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    left = Path(child.stdout.readline().strip())
    assert left.exists()
    assert leftovers_sweep().spool_files == 0  # the child is alive: its file stays
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    assert leftovers_sweep().spool_files == 1
    assert not left.exists() and not left.parent.exists()
    assert files_under(settings.INGEST_TMP_DIR) == [mine]


def test_plaintext_spool_is_gone_before_tier1_is_flushed(tenant, monkeypatch, settings):
    """The flush (syncfs) writes every dirty page of the file system: a plaintext spool file
    still there would be written to the disk with the ciphertext."""
    from archive.ingest import service
    from archive.ingest.spool import spool_chunks

    at_flush, real_flush = [], service.tier1_flush

    def flush_watched(paths):
        at_flush.append(files_under(settings.INGEST_TMP_DIR))
        real_flush(paths)

    monkeypatch.setattr(service, "tier1_flush", flush_watched)
    blobs = [to_bytes(ds) for ds in make_ct_series(3, patient_name=NAME)]
    results = service.instances_ingest(tenant=tenant, spooled=[spool_chunks([b]) for b in blobs],
                                       actor=service.Actor.system("test"))
    assert all(r.ok for r in results) and at_flush == [[]]


def test_series_retrieve_looks_up_the_data_key_once(client, tenant, make_token):
    """Each open of a sealed file needs the clinic's data key: a series looks it up once,
    not once per instance (a query per instance cost more than decrypting a CT slice)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    token = make_token(tenant, scopes=("read",))
    counts = []
    for n in (1, 2, 6):  # the first also records the token's use
        datasets = make_ct_series(n)
        for ds in datasets:
            ingest_bytes(tenant, to_bytes(ds))
        url = (f"/t/{tenant.slug}/dicomweb/studies/{datasets[0].StudyInstanceUID}"
               f"/series/{datasets[0].SeriesInstanceUID}")
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url, HTTP_ACCEPT='multipart/related; type="application/dicom"; '
                                  'transfer-syntax=*', HTTP_AUTHORIZATION=f"Bearer {token}")
            body = b"".join(response.streaming_content)
        assert response.status_code == 200 and body.count(b"DICM") == n
        counts.append(len(queries))
    assert counts[1] == counts[2]


@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1, 7 * SEG + 3])
@pytest.mark.parametrize("buffer_size", [1, SEG - 1, SEG, SEG + 5, 3 * SEG, 9 * SEG])
def test_readinto_fills_any_buffer_with_the_plaintext(size, buffer_size):
    data = os.urandom(size)
    blob = b"".join(crypto.encrypt_chunks(io.BytesIO(data), data_key=KEY, key_id=1, segment_size=SEG))
    reader = crypto.DecryptingReader(io.BytesIO(blob), key_lookup=lambda kid: KEY)
    for start in sorted({0, 3, SEG, size}):
        reader.seek(start)
        got = bytearray()
        buffer = bytearray(buffer_size)
        while n := reader.readinto(buffer):
            got += buffer[:n]
        assert bytes(got) == data[start:] and reader.tell() == max(start, size)


def test_readinto_decrypts_whole_segments_straight_into_the_buffer():
    """A series sent by WADO-RS fills its send buffers this way: a segment that fits is
    decrypted into the buffer, not made as bytes and copied."""
    data = os.urandom(3 * SEG + 10)
    blob = b"".join(crypto.encrypt_chunks(io.BytesIO(data), data_key=KEY, key_id=1, segment_size=SEG))
    reader = crypto.DecryptingReader(io.BytesIO(blob), key_lookup=lambda kid: KEY)
    buffer = bytearray(8 * SEG)
    assert reader.readinto(buffer) == len(data) and bytes(buffer[:len(data)]) == data
    assert reader._cache == {}  # no segment was made to be copied


def test_readinto_of_an_altered_segment_fails_and_leaves_no_plaintext_in_the_buffer():
    data = b"\x5a" * (2 * SEG)
    blob = bytearray(b"".join(crypto.encrypt_chunks(io.BytesIO(data), data_key=KEY, key_id=1, segment_size=SEG)))
    blob[crypto.HEADER_SIZE + SEG + crypto.TAG_SIZE + 7] ^= 1  # the second segment
    reader = crypto.DecryptingReader(io.BytesIO(bytes(blob)), key_lookup=lambda kid: KEY)
    buffer = bytearray(4 * SEG)
    with pytest.raises(crypto.DecryptionError):
        reader.readinto(buffer)
    assert b"\x5a" * 16 not in buffer[SEG:]


def test_an_instance_whose_tier1_file_fails_mid_read_is_closed_at_once(tenant):
    """A damaged segment ends the response broken; its file must not stay open until the
    garbage collector finds it (a series of damaged files would use up descriptors)."""
    from archive.storage.reader import StoredBytes

    instance = ingest_bytes(tenant, to_bytes(make_ct_series(1, patient_name=NAME)[0])).instance
    path = tier1_path(instance.storage_key)
    blob = bytearray(path.read_bytes())
    blob[crypto.HEADER_SIZE + 100] ^= 1
    path.write_bytes(bytes(blob))
    stored = StoredBytes(instance)
    opened = stored._open()
    with pytest.raises(crypto.DecryptionError):
        stored.readinto(bytearray(1 << 20))
    assert opened.closed
