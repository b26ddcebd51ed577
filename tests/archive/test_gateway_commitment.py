"""Storage commitment requests the gateway refuses (nothing recorded), and the same
transaction asked twice (one request). The reports themselves are tested end to end with a
worker in tests/storage/test_storage_commitment.py."""

import pytest
from pydicom import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, StorageCommitmentPushModel

from archive.gateway.models import DicomPeer, StorageCommitment
from tests.archive.test_gateway import running_gateway

pytestmark = pytest.mark.django_db(transaction=True)
WELL_KNOWN = "1.2.840.10008.1.20.1.1"


def action_information(transaction_uid="1.2.3", items=((CTImageStorage, "1.2.3.4"),)) -> Dataset:
    ds = Dataset()
    if transaction_uid is not None:
        ds.TransactionUID = transaction_uid
    ds.ReferencedSOPSequence = []
    for sop_class, uid in items:
        item = Dataset()
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_class, uid
        ds.ReferencedSOPSequence.append(item)
    return ds


@pytest.fixture
def n_action(tenant, settings):
    settings.DICOM_COMMIT_WAIT_SECONDS = 0  # no watching thread: these are answered at once
    DicomPeer.objects.for_tenant(tenant).create(ae_title="MODALITY")
    with running_gateway() as port:
        def send(ds, action_type=1, instance=WELL_KNOWN):
            ae = AE(ae_title="MODALITY")
            ae.add_requested_context(StorageCommitmentPushModel)
            assoc = ae.associate("127.0.0.1", port, ae_title=tenant.ae_title)
            assert assoc.is_established
            try:
                status, _ = assoc.send_n_action(ds, action_type, StorageCommitmentPushModel, instance)
            finally:
                assoc.release()
            return status.Status
        yield send


def test_malformed_requests_are_refused_and_not_recorded(n_action, tenant):
    assert n_action(action_information(transaction_uid=None)) == 0x0120  # missing attribute
    assert n_action(action_information(transaction_uid="1.2.x")) == 0x0115  # invalid argument
    assert n_action(action_information(items=[(CTImageStorage, "1..2")])) == 0x0115
    assert n_action(action_information(items=[])) == 0x0120
    assert n_action(action_information(), action_type=2) == 0x0123  # no such action
    assert n_action(action_information(), instance="1.2.3.4.5") == 0x0117  # not the well-known instance
    assert not StorageCommitment.objects.for_tenant(tenant).exists()


def test_the_same_transaction_twice_is_one_request(n_action, tenant):
    transaction_uid = generate_uid()
    assert n_action(action_information(transaction_uid)) == 0x0000
    assert n_action(action_information(transaction_uid)) == 0x0000
    row = StorageCommitment.objects.for_tenant(tenant).get()
    assert (row.transaction_uid, row.requester_ae, row.items) == (transaction_uid, "MODALITY",
                                                                  [[CTImageStorage, "1.2.3.4"]])
