"""The DICOM gateway against real peers: dcmtk's storescu/echoscu and a pynetdicom SCU."""

import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification

from archive.gateway.models import DicomPeer
from archive.gateway.server import start_gateway
from archive.models import Instance
from tenants.audit import AuditEvent
from tests.dicom_factory import make_ct_series
from tests.servers import free_port, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def running_gateway():
    """The DICOM gateway on a free loopback port, in this process; yields the port."""
    port = free_port()
    server = start_gateway("127.0.0.1", port, block=False)
    try:
        yield port
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def gateway(tenant, other_tenant):
    DicomPeer.objects.for_tenant(tenant).create(ae_title="MODALITY1")
    DicomPeer.objects.for_tenant(other_tenant).create(ae_title="OTHERMOD")
    with running_gateway() as port:
        yield port


def associate(port, called, calling="MODALITY1", contexts=(Verification,)):
    ae = AE(ae_title=calling)
    for cx in contexts:
        ae.add_requested_context(cx)
    return ae.associate("127.0.0.1", port, ae_title=called)


def test_echo_for_allowed_peer(gateway, tenant):
    assoc = associate(gateway, tenant.ae_title)
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()


@pytest.mark.parametrize("called, calling", [
    ("NOSUCHCLINIC", "MODALITY1"),  # unknown called AE
    ("ACME", "STRANGER"),  # calling AE not on the clinic's list
    ("OTHER", "MODALITY1"),  # allowed at ACME, not at OTHER
])
def test_unknown_pairs_rejected(gateway, called, calling):
    assoc = associate(gateway, called, calling)
    assert assoc.is_rejected


def test_cstore_stores_and_dedups(gateway, tenant, other_tenant):
    datasets = make_ct_series(3)
    assoc = associate(gateway, tenant.ae_title, contexts=[CTImageStorage])
    assert assoc.is_established
    statuses = [assoc.send_c_store(ds).Status for ds in datasets]
    statuses.append(assoc.send_c_store(datasets[0]).Status)  # same instance again
    assoc.release()
    assert statuses == [0, 0, 0, 0]
    assert Instance.objects.for_tenant(tenant).count() == 3
    assert not Instance.objects.for_tenant(other_tenant).exists()
    # The gateway writes its audit event in its own thread once the association ends.
    event = wait_for(lambda: AuditEvent.objects.for_tenant(tenant).filter(action="dimse.store").first(),
                     timeout=10, what="the association's audit event")
    assert (event.detail["stored"], event.detail["present"]) == (3, 1)


def test_cstore_refuses_missing_uid(gateway, tenant):
    ds = make_ct_series(1)[0]
    del ds.StudyInstanceUID
    assoc = associate(gateway, tenant.ae_title, contexts=[CTImageStorage])
    status = assoc.send_c_store(ds).Status
    assoc.release()
    assert status & 0xF000 in (0xA000, 0xC000)
    assert not Instance.objects.for_tenant(tenant).exists()


@pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk not installed (make test installs it)")
def test_dcmtk_storescu(gateway, tenant, tmp_path):
    files = []
    for name in ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm"):
        files.append(Path(get_testdata_file(name)))
    result = subprocess.run(
        ["storescu", "-aet", "MODALITY1", "-aec", tenant.ae_title, "-xw",  # also propose JPEG 2000
         "127.0.0.1", str(gateway), *map(str, files)],
        capture_output=True, text=True, timeout=60, env={"TCP_NODELAY": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert Instance.objects.for_tenant(tenant).count() == 3


@pytest.mark.skipif(shutil.which("echoscu") is None, reason="dcmtk not installed")
def test_dcmtk_echoscu_rejected_for_stranger(gateway, tenant):
    result = subprocess.run(["echoscu", "-aet", "STRANGER", "-aec", tenant.ae_title, "127.0.0.1", str(gateway)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "Rejected" in result.stderr or "rejected" in (result.stdout + result.stderr).lower()


def test_private_storage_class_accepted_other_services_not(gateway, tenant):
    """Storage stays unrestricted (a vendor's private objects are kept); a standard service
    the gateway does not offer (Modality Worklist) is rejected in negotiation."""
    from pynetdicom.sop_class import ModalityWorklistInformationFind

    siemens_csa = "1.3.12.2.1107.5.9.1"
    [ds] = make_ct_series(1, 8, 8)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = siemens_csa
    assoc = associate(gateway, tenant.ae_title, contexts=[siemens_csa, ModalityWorklistInformationFind])
    assert [cx.abstract_syntax for cx in assoc.accepted_contexts] == [siemens_csa]
    assert assoc.send_c_store(ds).Status == 0x0000
    assoc.release()
    assert Instance.objects.for_tenant(tenant).get().sop_class_uid == siemens_csa


def test_a_pdu_longer_than_agreed_closes_the_connection(gateway, tenant):
    """pynetdicom would read the announced length (here 2 GB) into memory; the gateway closes
    the connection instead, before the association, and goes on serving others."""
    import socket
    import struct

    sock = socket.create_connection(("127.0.0.1", gateway))
    sock.settimeout(5)
    sock.sendall(struct.pack(">BBL", 0x01, 0, 2_000_000_000))  # an A-ASSOCIATE-RQ "of 2 GB"
    closed = False
    try:
        for _ in range(200):  # up to 12.8 MB
            sock.sendall(b"\0" * 65536)
    except OSError:
        closed = True
    if not closed:
        try:
            closed = sock.recv(1) == b""
        except TimeoutError:
            closed = False  # still open, still reading
        except OSError:
            closed = True
    sock.close()
    assert closed
    assoc = associate(gateway, tenant.ae_title)
    assert assoc.is_established and assoc.send_c_echo().Status == 0x0000
    assoc.release()


def test_an_association_copies_its_contexts_without_copying_each_uid(gateway, tenant, monkeypatch):
    """pynetdicom deep-copies the server's presentation contexts for each association: every
    storage class in every transfer syntax, 6,662 UIDs, cost 22 ms of CPU per association,
    most of what a modality that opens one per image pays. The copy still has to be the
    association's own (its lists changed, the server's unchanged)."""
    import pydicom.uid
    from pynetdicom.association import Association

    made, created = [], []
    uid_new = pydicom.uid.UID.__new__

    def counting_new(cls, *args, **kwargs):
        made.append(1)
        return uid_new(cls, *args, **kwargs)

    monkeypatch.setattr(pydicom.uid.UID, "__new__", counting_new)
    init = Association.__init__

    def remembered(self, *args, **kwargs):
        init(self, *args, **kwargs)
        created.append(self)

    monkeypatch.setattr(Association, "__init__", remembered)
    assoc = associate(gateway, tenant.ae_title, contexts=(Verification, CTImageStorage))
    assert assoc.is_established and assoc.send_c_echo().Status == 0x0000
    assoc.release()
    assert len(made) < 1000, f"{len(made)} UIDs made for one association"
    [acceptor] = [a for a in created if a.is_acceptor]
    ours = {c.abstract_syntax: c for c in acceptor.acceptor.supported_contexts}
    ours[CTImageStorage].transfer_syntax.clear()
    others = [c for c in acceptor._server.contexts if c.abstract_syntax == CTImageStorage]
    assert others and others[0].transfer_syntax, "the server's contexts changed with the association's"


def test_full_garbage_collections_at_most_once_a_minute(tenant, monkeypatch):
    """pynetdicom's accept loop ran a full collection every 60 turns (a turn per connection):
    about 40 ms in this process, with every association stopped meanwhile."""
    import gc

    from cloudpacs.dimse import serving

    gateway = start_gateway("127.0.0.1", free_port(), block=False)
    try:
        server = gateway.servers[0]
        collections = []
        monkeypatch.setattr(gc, "collect", lambda *args: collections.append(args))
        for _ in range(150):  # 150 connections in quick succession
            server.service_actions()
        assert collections == []
        server._collected_at -= serving.FULL_COLLECTION_SECONDS
        server.service_actions()
        server.service_actions()
        assert collections == [()]
    finally:
        gateway.shutdown()
        gateway.server_close()


def test_a_refused_association_gives_its_database_connection_back(gateway, tenant, monkeypatch):
    """The clinic look-up takes a connection (from the pool) in the association's thread; a
    refused association ends without the released/aborted events that give it back, so a
    dozen calls with a wrong AE title used to leave the gateway without connections."""
    import threading

    from django.db.backends.base.base import BaseDatabaseWrapper

    closed_by = []
    close = BaseDatabaseWrapper.close

    def recording_close(self):
        closed_by.append(threading.current_thread().name)
        return close(self)

    monkeypatch.setattr(BaseDatabaseWrapper, "close", recording_close)
    assoc = associate(gateway, tenant.ae_title, calling="STRANGER")
    assert assoc.is_rejected
    wait_for(lambda: any(name.startswith("AcceptorThread") for name in closed_by), timeout=10,
             what="the refused association's thread to close its connection")


def test_a_received_data_set_is_gone_before_the_flush(gateway, tenant, monkeypatch):
    """The plaintext pynetdicom received into its temporary file is removed before tier 1
    is flushed. While any handle to it is open the file lives on after its unlink, so the
    flush (syncfs) would write its pages too: plaintext on disk, and half of the flush's
    time for a 512² CT slice."""
    from archive.ingest import service
    from archive.ingest.spool import spool_dir

    open_at_flush = []
    flush = service.tier1_flush

    def flush_seeing(paths):
        spool = f"{spool_dir()}/"
        for fd in Path("/proc/self/fd").iterdir():
            try:
                target = fd.readlink()
            except OSError:  # closed meanwhile (the listing's own fd)
                continue
            if str(target).startswith(spool):
                open_at_flush.append(str(target))
        return flush(paths)

    monkeypatch.setattr(service, "tier1_flush", flush_seeing)
    flushes = []
    monkeypatch.setattr(service, "tier1_flush", lambda paths: flushes.append(paths) or flush_seeing(paths))
    assoc = associate(gateway, tenant.ae_title, contexts=[CTImageStorage])
    statuses = [assoc.send_c_store(ds).Status for ds in make_ct_series(2)]
    assoc.release()
    assert statuses == [0, 0] and len(flushes) == 2
    assert open_at_flush == []


def test_a_handler_failure_leaves_no_received_plaintext(gateway, tenant, monkeypatch):
    """pynetdicom removes a received data set's file after the C-STORE handler, but not
    when the handler raises: the plaintext stayed in the spool until it was swept."""
    from archive.gateway import handlers
    from archive.ingest.spool import spool_dir

    def failing(tenant):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(handlers, "upload_refusal", failing)
    assoc = associate(gateway, tenant.ae_title, contexts=[CTImageStorage])
    status = assoc.send_c_store(make_ct_series(1)[0]).Status
    assoc.release()
    assert status & 0xF000 in (0xA000, 0xC000)
    assert [p.name for p in spool_dir().iterdir() if p.suffix == ".dcm"] == []
    assert not Instance.objects.for_tenant(tenant).exists()


def test_a_second_association_checks_no_negotiation_uid_again(gateway, tenant, monkeypatch):
    """pynetdicom checks every UID of a negotiation with pydicom's regex, each time: for a
    modality that opens an association per image and proposes 128 contexts, 14% of the
    gateway's CPU. The answers are kept (cloudpacs.dimse.uids); the second association
    with the same contexts checks none again, and is still negotiated as the first."""
    from pydicom.uid import UID
    from pynetdicom.presentation import StoragePresentationContexts

    checked = []
    regex_check = UID.is_valid.fget
    monkeypatch.setattr(UID, "is_valid", property(lambda uid: checked.append(str(uid)) or regex_check(uid)))
    from cloudpacs.dimse import uids

    proposed = [cx.abstract_syntax for cx in StoragePresentationContexts[:40]]
    accepted = []
    for _ in range(2):
        checked.clear()
        misses = (uids._set_uid.cache_info().misses, uids._valid.cache_info().misses)
        assoc = associate(gateway, tenant.ae_title, contexts=proposed)
        assert assoc.is_established
        accepted.append(sorted(cx.abstract_syntax for cx in assoc.accepted_contexts))
        assoc.release()
    assert accepted[0] == accepted[1] == sorted(proposed)
    assert checked == []
    assert (uids._set_uid.cache_info().misses, uids._valid.cache_info().misses) == misses
