"""C-GET and C-MOVE against the gateway, from pynetdicom and dcmtk's getscu/movescu: the
levels and their keys, transfer syntax conversion for what the requester accepts, a
sub-operation failure that is counted and named, C-CANCEL, unknown destinations, another
clinic's data, and the audit log."""

import io
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import Dataset
from pydicom.data import get_testdata_file
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
)
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    MRImageStorage,
    PatientRootQueryRetrieveInformationModelGet,
    RTDoseStorage,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from archive.gateway.models import DicomPeer
from archive.models import Instance
from tenants.models import AuditEvent
from tests.archive.test_gateway import running_gateway
from tests.archive.test_gateway_find import identifier
from tests.archive.test_services_ingest import ingest_bytes
from tests.dicom_factory import make_ct_series, to_bytes
from tests.servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)
DCMTK = pytest.mark.skipif(shutil.which("getscu") is None, reason="dcmtk not installed (make test installs it)")


def bundled(name: str) -> bytes:
    return Path(get_testdata_file(name)).read_bytes()


@pytest.fixture
def archive(tenant, other_tenant):
    """Two CT studies of one patient, an MR stored as JPEG 2000 lossless, an RT dose (32-bit
    pixels: no lossless encoder takes them); another clinic's study."""
    DicomPeer.objects.for_tenant(tenant).create(ae_title="WORKSTATION")
    DicomPeer.objects.for_tenant(other_tenant).create(ae_title="WORKSTATION")
    made = {
        "ct1": make_ct_series(3, 64, 64, patient_name="Doe^Jane", patient_id="P1", accession="A1"),
        "ct2": make_ct_series(2, 16, 16, patient_name="Doe^Jane", patient_id="P1", accession="A2"),
    }
    for series in made.values():
        for ds in series:
            assert ingest_bytes(tenant, to_bytes(ds)).ok
    for name in ("MR_small_jp2klossless.dcm", "rtdose.dcm"):
        made[name] = [pydicom.dcmread(io.BytesIO(bundled(name)))]
        assert ingest_bytes(tenant, bundled(name)).ok
    made["theirs"] = make_ct_series(1, 16, 16, patient_name="Doe^Jane", patient_id="P1", accession="T1")
    assert ingest_bytes(other_tenant, to_bytes(made["theirs"][0])).ok
    with running_gateway() as port:
        yield port, made


def c_get(port, tenant, query: Dataset, *, storage=((CTImageStorage, None),), model=StudyRootQueryRetrieveInformationModelGet,
          cancel_after: int | None = None):
    """(received data sets, the final response) of a C-GET; `storage` is the (SOP class,
    transfer syntaxes) the requester offers to receive."""
    received, roles = [], []
    ae = AE(ae_title="WORKSTATION")
    ae.add_requested_context(model)
    for sop_class, syntaxes in storage:
        ae.add_requested_context(sop_class, syntaxes or [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        roles.append(build_role(sop_class, scp_role=True))
    state = {}

    def on_store(event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        received.append(ds)
        if cancel_after is not None and len(received) == cancel_after:
            event.assoc.send_c_cancel(state["msg_id"], context_id=state["context_id"])
        return 0x0000

    assoc = ae.associate("127.0.0.1", port, ae_title=tenant.ae_title, ext_neg=roles,
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert assoc.is_established
    state["msg_id"] = 7
    state["context_id"] = next(cx.context_id for cx in assoc.accepted_contexts if cx.abstract_syntax == model)
    final = None
    try:
        for status, ident in assoc.send_c_get(query, model, msg_id=7):
            if status and status.Status not in (0xFF00, 0xFF01):
                final = (status, ident)
    finally:
        assoc.release()
    return received, final


def uid_of(made, key) -> str:
    return str(made[key][0].StudyInstanceUID)


def test_get_a_study_as_stored_with_counts_and_audit(archive, tenant):
    port, made = archive
    received, (status, _) = c_get(port, tenant, identifier("STUDY", StudyInstanceUID=uid_of(made, "ct1")))
    assert status.Status == 0x0000
    assert (status.NumberOfCompletedSuboperations, status.NumberOfFailedSuboperations) == (3, 0)
    sent = {ds.SOPInstanceUID: ds for ds in received}
    for original in made["ct1"]:
        assert np.array_equal(sent[original.SOPInstanceUID].pixel_array, original.pixel_array)
        assert sent[original.SOPInstanceUID].PatientName == "Doe^Jane"
    event = AuditEvent.objects.for_tenant(tenant).get(action="dicom.get")
    assert event.actor_label == "DICOM peer WORKSTATION"
    assert (event.detail["level"], event.detail["instances"], len(event.detail["studies"])) == ("STUDY", 3, 1)


def test_get_levels_lists_and_patient_root(archive, tenant):
    port, made = archive
    ct1, ct2 = made["ct1"], made["ct2"]
    both = identifier("STUDY", StudyInstanceUID=[uid_of(made, "ct1"), uid_of(made, "ct2")])
    assert len(c_get(port, tenant, both)[0]) == 5
    series = identifier("SERIES", StudyInstanceUID=uid_of(made, "ct2"), SeriesInstanceUID=ct2[0].SeriesInstanceUID)
    assert len(c_get(port, tenant, series)[0]) == 2
    two = identifier("IMAGE", StudyInstanceUID=uid_of(made, "ct1"), SeriesInstanceUID=ct1[0].SeriesInstanceUID,
                     SOPInstanceUID=[ct1[0].SOPInstanceUID, ct1[2].SOPInstanceUID])
    assert {ds.SOPInstanceUID for ds in c_get(port, tenant, two)[0]} == {ct1[0].SOPInstanceUID, ct1[2].SOPInstanceUID}
    # Patient Root, PATIENT level: every CT of P1 here (the MR and the dose are of other patients).
    received, (status, _) = c_get(port, tenant, identifier("PATIENT", PatientID="P1"),
                                  model=PatientRootQueryRetrieveInformationModelGet)
    assert (status.Status, len(received)) == (0x0000, 5)
    assert made["theirs"][0].SOPInstanceUID not in {ds.SOPInstanceUID for ds in received}


def test_transfer_syntax_follows_what_the_requester_accepts(archive, tenant):
    port, made = archive
    mr = made["MR_small_jp2klossless.dcm"][0]
    query = identifier("STUDY", StudyInstanceUID=mr.StudyInstanceUID)
    # Offered JPEG 2000 lossless: sent as stored.
    [as_stored], _ = c_get(port, tenant, query, storage=[(MRImageStorage, [JPEG2000Lossless])])
    assert as_stored.file_meta.TransferSyntaxUID == JPEG2000Lossless
    # Offered only uncompressed: decoded, the same pixels.
    [plain], (status, _) = c_get(port, tenant, query, storage=[(MRImageStorage, [ImplicitVRLittleEndian])])
    assert status.Status == 0x0000
    assert plain.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert np.array_equal(plain.pixel_array, mr.pixel_array)
    assert plain.SOPInstanceUID == mr.SOPInstanceUID  # another encoding, the same instance
    # An uncompressed CT to a requester that takes only JPEG 2000 lossless: encoded, lossless.
    ct = made["ct1"][0]
    [j2k], _ = c_get(port, tenant, identifier("IMAGE", StudyInstanceUID=ct.StudyInstanceUID,
                                              SeriesInstanceUID=ct.SeriesInstanceUID, SOPInstanceUID=ct.SOPInstanceUID),
                     storage=[(CTImageStorage, [JPEG2000Lossless])])
    assert j2k.file_meta.TransferSyntaxUID == JPEG2000Lossless
    assert np.array_equal(j2k.pixel_array, ct.pixel_array)
    assert j2k.SOPInstanceUID == ct.SOPInstanceUID


def test_an_instance_that_cannot_be_converted_is_a_named_failure(archive, tenant):
    port, made = archive
    dose = made["rtdose.dcm"][0]
    # 32-bit dose pixels: no lossless encoder; JPEG baseline is lossy and never made.
    received, (status, ident) = c_get(port, tenant, identifier("STUDY", StudyInstanceUID=dose.StudyInstanceUID),
                                      storage=[(RTDoseStorage, [JPEG2000Lossless, JPEGBaseline8Bit])])
    assert received == []
    assert status.Status == 0xA702
    assert (status.NumberOfCompletedSuboperations, status.NumberOfFailedSuboperations) == (0, 1)
    assert ident.FailedSOPInstanceUIDList == dose.SOPInstanceUID  # one value: not a list
    # A requester that offered no context for the class at all: the same, counted.
    ct = made["ct1"]
    received, (status, _) = c_get(port, tenant, identifier("STUDY", StudyInstanceUID=uid_of(made, "ct1")),
                                  storage=[(MRImageStorage, None)])
    assert (received, status.Status, status.NumberOfFailedSuboperations) == ([], 0xA702, len(ct))


def test_bad_identifiers_and_other_clinics(archive, tenant):
    port, made = archive
    for query in (identifier("STUDY"),  # no StudyInstanceUID
                  identifier("STUDY", StudyInstanceUID="1.2.*"),  # no wildcards in a retrieve
                  identifier("STUDY", StudyInstanceUID="1.02.3"),  # not a UID
                  identifier("SERIES", StudyInstanceUID=["1.2.3", "1.2.4"], SeriesInstanceUID="1.2.5"),
                  identifier("PATIENT", PatientID="P1"),  # PATIENT is a Patient Root level
                  identifier("WORLD", StudyInstanceUID=uid_of(made, "ct1"))):
        received, (status, _) = c_get(port, tenant, query)
        assert (received, status.Status) == ([], 0xA900), query
    # Another clinic's study: nothing matches; no sub-operations, success.
    received, (status, _) = c_get(port, tenant, identifier("STUDY", StudyInstanceUID=uid_of(made, "theirs")))
    assert (received, status.Status, status.NumberOfCompletedSuboperations) == ([], 0x0000, 0)


def test_cancel_stops_the_sub_operations(archive, tenant):
    port, made = archive
    both = identifier("STUDY", StudyInstanceUID=[uid_of(made, "ct1"), uid_of(made, "ct2")])
    received, (status, _) = c_get(port, tenant, both, cancel_after=1)
    assert status.Status == 0xFE00
    assert len(received) < 5
    assert status.NumberOfRemainingSuboperations == 5 - len(received)


class StoreSCP:
    """A C-MOVE destination: pynetdicom's storage SCP on a loopback port."""

    def __init__(self, ae_title="WSDEST"):
        self.received, self.calling = [], []
        self.ae = AE(ae_title=ae_title)
        for sop_class in (CTImageStorage, MRImageStorage):
            self.ae.add_supported_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
        self.port = free_port()

    def _store(self, event):
        self.calling.append(event.assoc.requestor.ae_title)
        self.received.append((event.request.MoveOriginatorApplicationEntityTitle, event.dataset))
        return 0x0000

    def __enter__(self):
        self.server = self.ae.start_server(("127.0.0.1", self.port), block=False,
                                           evt_handlers=[(evt.EVT_C_STORE, self._store)])
        return self

    def __exit__(self, *exc):
        self.server.shutdown()


def c_move(port, tenant, query, destination, model=StudyRootQueryRetrieveInformationModelMove):
    ae = AE(ae_title="WORKSTATION")
    ae.add_requested_context(model)
    assoc = ae.associate("127.0.0.1", port, ae_title=tenant.ae_title)
    assert assoc.is_established
    final = None
    try:
        for status, _ident in assoc.send_c_move(query, destination, model):
            if status and status.Status not in (0xFF00, 0xFF01):
                final = status
    finally:
        assoc.release()
    return final


def test_move_to_a_configured_destination(archive, tenant, other_tenant):
    port, made = archive
    with StoreSCP() as dest:
        DicomPeer.objects.for_tenant(tenant).create(ae_title="WSDEST", may_send=False, host="127.0.0.1", port=dest.port)
        mr = made["MR_small_jp2klossless.dcm"][0]
        status = c_move(port, tenant, identifier("STUDY", StudyInstanceUID=[uid_of(made, "ct1"), mr.StudyInstanceUID]),
                        "WSDEST")
        assert status.Status == 0x0000
        assert (status.NumberOfCompletedSuboperations, status.NumberOfFailedSuboperations) == (4, 0)
        assert len(dest.received) == 4
        # Called by the clinic's AE title, which is also named as the move's originator.
        assert set(dest.calling) == {tenant.ae_title}
        assert {originator for originator, _ in dest.received} == {tenant.ae_title}
        # The JPEG 2000 MR went uncompressed (the destination takes only that), same pixels.
        [got] = [ds for _, ds in dest.received if ds.SOPInstanceUID == mr.SOPInstanceUID]
        assert np.array_equal(got.pixel_array, mr.pixel_array)
    event = AuditEvent.objects.for_tenant(tenant).get(action="dicom.move")
    assert (event.detail["destination"], event.detail["instances"]) == ("WSDEST", 4)


def test_move_to_unknown_or_another_clinics_destination_is_a801(archive, tenant, other_tenant):
    port, made = archive
    with StoreSCP("THEIRDEST") as dest:
        DicomPeer.objects.for_tenant(other_tenant).create(ae_title="THEIRDEST", host="127.0.0.1", port=dest.port)
        # A sender without a host is no destination either.
        query = identifier("STUDY", StudyInstanceUID=uid_of(made, "ct1"))
        for destination in ("NOWHERE", "THEIRDEST", "WORKSTATION"):
            assert c_move(port, tenant, query, destination).Status == 0xA801
        assert dest.received == []
    assert not AuditEvent.unscoped.filter(action="dicom.move").exists()


def test_move_with_a_bad_identifier_fails_without_calling_the_destination(archive, tenant):
    port, made = archive
    with StoreSCP() as dest:
        DicomPeer.objects.for_tenant(tenant).create(ae_title="WSDEST", may_send=False, host="127.0.0.1", port=dest.port)
        status = c_move(port, tenant, identifier("STUDY", StudyInstanceUID="1.2.*"), "WSDEST")
        assert status.Status & 0xF000 == 0xC000  # unable to process
        status = c_move(port, tenant, identifier("STUDY", StudyInstanceUID=uid_of(made, "theirs")), "WSDEST")
        assert (status.Status, status.NumberOfCompletedSuboperations) == (0x0000, 0)
        assert dest.received == dest.calling == []


@DCMTK
def test_dcmtk_getscu_and_movescu(archive, tenant, tmp_path):
    port, made = archive
    env = {"TCP_NODELAY": "1", "PATH": "/usr/bin:/bin"}
    study = uid_of(made, "ct1")
    out = tmp_path / "get"
    out.mkdir()
    result = subprocess.run(["getscu", "-aet", "WORKSTATION", "-aec", tenant.ae_title, "-S", "-k", "QueryRetrieveLevel=STUDY",
                             "-k", f"StudyInstanceUID={study}", "-od", str(out), "127.0.0.1", str(port)],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert len(list(out.iterdir())) == 3
    with StoreSCP() as dest:
        DicomPeer.objects.for_tenant(tenant).create(ae_title="WSDEST", may_send=False, host="127.0.0.1", port=dest.port)
        result = subprocess.run(["movescu", "-aet", "WORKSTATION", "-aec", tenant.ae_title, "-aem", "WSDEST", "-S",
                                 "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}",
                                 "127.0.0.1", str(port)], capture_output=True, text=True, timeout=60, env=env)
        assert result.returncode == 0, result.stderr
        assert len(dest.received) == 3
        result = subprocess.run(["movescu", "-aet", "WORKSTATION", "-aec", tenant.ae_title, "-aem", "NOWHERE", "-S",
                                 "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}",
                                 "127.0.0.1", str(port)], capture_output=True, text=True, timeout=60, env=env)
        assert result.returncode != 0
        assert "MoveDestinationUnknown" in result.stderr
    assert Instance.objects.for_tenant(tenant).count() == 7  # nothing changed by reading


def test_concurrent_gets_do_not_mix(archive, tenant):
    """Two workstations at once: each gets exactly its own study."""
    port, made = archive
    results = {}

    def run(key):
        results[key] = {ds.SOPInstanceUID for ds in c_get(port, tenant, identifier("STUDY", StudyInstanceUID=uid_of(made, key)))[0]}

    threads = [threading.Thread(target=run, args=(key,)) for key in ("ct1", "ct2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {key: {ds.SOPInstanceUID for ds in made[key]} for key in ("ct1", "ct2")}
