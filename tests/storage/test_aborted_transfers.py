"""Every door aborted mid-transfer leaves nothing at rest, and a web worker SIGKILLed
mid-ingest leaves nothing once the leftovers sweep has run: no spool file, no tier-1 file
without an index row, and never plaintext in tier 1.

Real peers throughout: the web server as `make run` starts it (tests.servers.WebServer),
a raw socket for the half-sent STOW body, pynetdicom for the C-STORE cut off by an
A-ABORT, the tus endpoints for a terminated browser upload."""

import os
import signal
import socket
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from archive.dicomweb.stow import INGEST_BATCH
from archive.models import Instance
from archive.storage.leftovers import leftovers_sweep
from tenants import roles
from tests.archive.stow_helpers import files_under, multipart
from tests.archive.upload_helpers import TusClient
from tests.dicom_factory import make_ct_series, to_bytes
from tests.dimse_peers import send_half_a_data_set
from tests.servers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
NAME = "Confidential^Patricia"


def leftovers(settings) -> list[Path]:
    return files_under(settings.INGEST_TMP_DIR, settings.TIER1_PATH, settings.UPLOAD_DIR)


def _spool_files_open(pid: int, spool: str) -> list[str]:
    """Files under the spool that process `pid` holds open (unlinked ones included)."""
    fd_dir = Path(f"/proc/{pid}/fd")
    names = []
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(spool) and not Path(target).is_dir():
            names.append(target)
    return names


def test_stow_body_cut_off_mid_transfer_leaves_nothing(web, tenant, make_token, settings):
    token = make_token(tenant, scopes=("upload",))
    parts = [to_bytes(ds) for ds in make_ct_series(12, 512, 512, patient_name=NAME)]  # 6 MB
    body, content_type = multipart(parts)
    [worker] = web.worker_pids()
    with socket.create_connection(("127.0.0.1", web.port)) as sock:
        sock.sendall((f"POST /t/{tenant.slug}/dicomweb/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      f"Authorization: Bearer {token}\r\nContent-Type: {content_type}\r\n"
                      f"Content-Length: {len(body)}\r\n\r\n").encode())
        sock.sendall(body[:len(body) // 2])
        # The server has the half body on disk (past the in-memory threshold) ...
        wait_for(lambda: _spool_files_open(worker, settings.INGEST_TMP_DIR), timeout=30,
                 what="the web worker to spool the body")
    # ... and lets go of it once the client is gone.
    wait_for(lambda: not _spool_files_open(worker, settings.INGEST_TMP_DIR), timeout=30,
             what="the web worker to drop the half body")
    assert leftovers(settings) == []
    assert not Instance.objects.for_tenant(tenant).exists()


def test_cstore_aborted_mid_dataset_leaves_nothing(gateway, tenant, settings):
    ds = make_ct_series(1, 512, 512, patient_name=NAME)[0]
    ae = AE(ae_title="MODALITY1")
    ae.add_requested_context(CTImageStorage, ImplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", gateway, ae_title=tenant.ae_title)
    assert assoc.is_established
    send_half_a_data_set(assoc, ds)  # the command and half of the data set
    wait_for(lambda: files_under(settings.INGEST_TMP_DIR), timeout=30,
             what="the gateway to write the data set as it arrives")
    assoc.abort()
    wait_for(lambda: not files_under(settings.INGEST_TMP_DIR), timeout=30,
             what="the gateway to remove the half-received data set")
    assert not Instance.objects.for_tenant(tenant).exists()


def test_browser_upload_terminated_or_refused_leaves_nothing(client, tenant, make_member, login, settings,
                                                             tmp_path):
    settings.UPLOAD_DIR = str(tmp_path / "uploads")
    login(make_member(tenant, roles.TECHNOLOGIST))
    tus = TusClient(client, tenant.slug)
    data = to_bytes(make_ct_series(1, 128, 128, patient_name=NAME)[0])
    url = tus.create(len(data), filename="a.dcm")["Location"]
    assert tus.patch(url, 0, data[:len(data) // 2]).status_code == 204
    assert files_under(settings.UPLOAD_DIR)  # resumable until it expires, or is terminated:
    assert client.delete(url, headers={"Tus-Resumable": "1.0.0"}).status_code == 204
    assert leftovers(settings) == []
    broken = data[:len(data) // 2]  # complete as an upload, but not a whole instance
    result = tus.send(broken, "broken.dcm")
    assert result["files"][0]["status"] == "rejected"
    assert leftovers(settings) == []
    assert not Instance.objects.for_tenant(tenant).exists()


@contextmanager
def index_writes_blocked():
    """Hold the database's write lock (SQLite) or the instance table (PostgreSQL), so an
    ingest waits with its files placed in tier 1 and its rows not yet committed."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("LOCK TABLE archive_instance IN EXCLUSIVE MODE")
        else:
            cursor.execute("UPDATE tenants_tenant SET name = name")
        yield


def _sealed_slice(tier1: Path, before: set, spool: str, waiting: int) -> list[Path] | None:
    """The first slice's tier-1 files once all are sealed and their plaintext removed."""
    new = [p for p in files_under(tier1) if p not in before and not p.name.endswith(".partial")]
    return new if len(new) == INGEST_BATCH and len(files_under(spool)) == waiting else None


def test_web_worker_killed_mid_ingest_leaves_nothing_after_the_sweep(web, tenant, make_token, settings):
    token = make_token(tenant, scopes=("upload", "read"))
    headers = {"Authorization": f"Bearer {token}"}
    stow_url = f"{web.url}/t/{tenant.slug}/dicomweb/studies"
    # One instance first: the clinic's data key, patient and token use are written now.
    body, content_type = multipart([to_bytes(make_ct_series(1, patient_name=NAME)[0])])
    assert requests.post(stow_url, data=body, headers={**headers, "Content-Type": content_type},
                         timeout=60).status_code == 200
    # More parts than one ingest slice: the first slice waits for the index with its files
    # sealed in tier 1 (their plaintext removed), the rest wait in the spool in plaintext.
    datasets = make_ct_series(INGEST_BATCH + 6, patient_name=NAME)
    body, content_type = multipart([to_bytes(ds) for ds in datasets])
    tier1 = Path(settings.TIER1_PATH)
    before = set(files_under(tier1))
    [worker] = web.worker_pids()
    failed = []

    def send():
        try:
            requests.post(stow_url, data=body, headers={**headers, "Content-Type": content_type}, timeout=60)
        except requests.RequestException as exc:
            failed.append(exc)

    sender = threading.Thread(target=send)
    with index_writes_blocked():
        sender.start()
        waiting = len(datasets) - INGEST_BATCH
        placed = wait_for(lambda: _sealed_slice(tier1, before, settings.INGEST_TMP_DIR, waiting), timeout=60,
                          what="the worker to seal a slice into tier 1 and wait for the index")
        os.kill(worker, signal.SIGKILL)
        sender.join(timeout=60)
    assert failed  # the client saw the connection drop: nothing was acknowledged
    assert Instance.objects.for_tenant(tenant).count() == 1
    # The killed worker left the parts of the next slice in its spool (plaintext) and the
    # sealed files of the first in tier 1, which no row owns.
    assert len(files_under(settings.INGEST_TMP_DIR)) == waiting
    for path in placed:
        stored = path.read_bytes()
        assert not [uid for ds in datasets for uid in (ds.SOPInstanceUID, ds.StudyInstanceUID)
                    if str(uid).encode() in stored]
        assert NAME.encode() not in stored and b"DICM" not in stored
    result = leftovers_sweep(orphan_grace_seconds=0)
    assert (result.tier1_orphans, result.spool_files) == (INGEST_BATCH, waiting)
    assert files_under(settings.INGEST_TMP_DIR) == []
    assert set(files_under(tier1)) == before
