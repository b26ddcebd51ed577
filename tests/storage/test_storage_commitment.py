"""Storage commitment end to end: pynetdicom as the modality, the gateway in this process, a
real Celery worker archiving into two SeaweedFS regions. A modality is told "committed"
only for instances verified in both regions, and "failed" for what is not stored."""

import threading

import pytest
from django.db import connection
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage, MRImageStorage, StorageCommitmentPushModel

from archive.gateway.models import DicomPeer, StorageCommitment
from archive.models import Instance
from archive.storage.selectors import instances_verified_everywhere
from tenants.audit import AuditEvent
from tests.archive.test_gateway import running_gateway
from tests.archive.test_gateway_commitment import action_information
from tests.dicom_factory import make_ct_series
from tests.servers import free_port, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
WELL_KNOWN = "1.2.840.10008.1.20.1.1"


class Reports:
    """N-EVENT-REPORTs the modality receives; records, at that moment, how many of the
    committed instances are verified in both regions."""

    def __init__(self, tenant):
        self.tenant, self.got, self.arrived = tenant, [], threading.Event()

    def handle(self, event):
        info = event.event_information
        uids = [item.ReferencedSOPInstanceUID for item in info.get("ReferencedSOPSequence", [])]
        ids = Instance.objects.for_tenant(self.tenant).filter(sop_instance_uid__in=uids).values("pk")
        self.got.append((event.request.EventTypeID, info, event.assoc.requestor.ae_title,
                         len(list(instances_verified_everywhere(ids)))))
        connection.close()  # this is pynetdicom's thread: its connection would outlive the test
        self.arrived.set()
        return 0x0000, None


def modality(tenant):
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(CTImageStorage)
    ae.add_requested_context(StorageCommitmentPushModel)
    return ae


def test_report_on_the_same_association_once_verified(tenant, start_worker, settings):
    DicomPeer.objects.for_tenant(tenant).create(ae_title="MODALITY")
    start_worker()
    series = make_ct_series(3, 32, 32)
    reports = Reports(tenant)
    with running_gateway() as port:
        assoc = modality(tenant).associate("127.0.0.1", port, ae_title=tenant.ae_title,
                                           evt_handlers=[(evt.EVT_N_EVENT_REPORT, reports.handle)])
        assert assoc.is_established
        for ds in series:
            assert assoc.send_c_store(ds).Status == 0x0000
        missing = generate_uid()
        items = [(CTImageStorage, ds.SOPInstanceUID) for ds in series]
        items += [(CTImageStorage, missing), (MRImageStorage, series[0].SOPInstanceUID)]
        transaction_uid = generate_uid()
        status, _ = assoc.send_n_action(action_information(transaction_uid, items), 1, StorageCommitmentPushModel,
                                        WELL_KNOWN)
        assert status.Status == 0x0000
        assert reports.arrived.wait(90), "no N-EVENT-REPORT on the association"
        assoc.release()
    [(event_type, info, _, verified_then)] = reports.got
    assert event_type == 2  # some failed
    assert info.TransactionUID == transaction_uid
    assert [i.ReferencedSOPInstanceUID for i in info.ReferencedSOPSequence] == [ds.SOPInstanceUID for ds in series]
    assert verified_then == 3  # committed only once in both regions
    assert {(i.ReferencedSOPInstanceUID, i.FailureReason) for i in info.FailedSOPSequence} == {
        (missing, 0x0112), (series[0].SOPInstanceUID, 0x0119)}
    row = StorageCommitment.objects.for_tenant(tenant).get()
    assert (row.state, row.reported_on, row.committed, row.failed) == ("reported", "association", 3, 2)
    actions = set(AuditEvent.objects.for_tenant(tenant).values_list("action", flat=True))
    assert {"dicom.commitment_requested", "dicom.commitment_reported"} <= actions


def test_report_on_a_new_association_after_the_modality_left(tenant, start_worker, settings):
    """The modality asks and releases at once; nothing is archived yet (no worker), so nothing
    is reported. Once a worker has archived both regions, the report comes to the modality's
    own listener, called by the clinic's AE title."""
    reports = Reports(tenant)
    listener = AE(ae_title="MODALITY")
    listener.add_supported_context(StorageCommitmentPushModel, scu_role=False, scp_role=True)
    listen_port = free_port()
    server = listener.start_server(("127.0.0.1", listen_port), block=False,
                                   evt_handlers=[(evt.EVT_N_EVENT_REPORT, reports.handle)])
    DicomPeer.objects.for_tenant(tenant).create(ae_title="MODALITY", host="127.0.0.1", port=listen_port)
    series = make_ct_series(2, 32, 32)
    try:
        with running_gateway() as port:
            assoc = modality(tenant).associate("127.0.0.1", port, ae_title=tenant.ae_title)
            for ds in series:
                assert assoc.send_c_store(ds).Status == 0x0000
            status, _ = assoc.send_n_action(
                action_information(generate_uid(), [(CTImageStorage, ds.SOPInstanceUID) for ds in series]),
                1, StorageCommitmentPushModel, WELL_KNOWN)
            assert status.Status == 0x0000
            assoc.release()
            # The gateway stops watching when the requester leaves and hands the report over.
            wait_for(lambda: not StorageCommitment.objects.for_tenant(tenant).get().watched, timeout=10,
                     what="the gateway to hand the report to the workers")
        assert StorageCommitment.objects.for_tenant(tenant).get().state == "pending"
        assert reports.got == []
        start_worker()
        assert reports.arrived.wait(120), "no N-EVENT-REPORT on a new association"
    finally:
        server.shutdown()
    [(event_type, info, calling, verified_then)] = reports.got
    assert (event_type, calling, verified_then) == (1, tenant.ae_title, 2)
    assert "FailedSOPSequence" not in info
    assert StorageCommitment.objects.for_tenant(tenant).get().reported_on == "new association"
