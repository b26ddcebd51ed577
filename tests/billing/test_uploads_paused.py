"""After an unpaid grace period, every upload door refuses with a clear answer and stores
nothing; reading goes on."""

from datetime import timedelta

import pytest
import requests
from django.utils import timezone
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage

from archive.gateway.models import DicomPeer
from archive.models import Instance
from billing.grace import account_get
from billing.models import BillingAccount
from tests.archive.stow_helpers import files_under, multipart
from tests.archive.test_gateway import running_gateway
from tests.dicom_factory import make_ct_series, to_bytes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def overdue(tenant, settings, tmp_path):
    settings.STRIPE_SECRET_KEY = "sk_test_overdue"
    settings.INGEST_TMP_DIR = str(tmp_path / "spool")
    settings.TIER1_PATH = str(tmp_path / "tier1")
    account = account_get(tenant)
    account.grace_reason = BillingAccount.PAYMENT_FAILED
    account.grace_started_at = timezone.now() - timedelta(days=15)
    account.grace_ends_at = timezone.now() - timedelta(days=1)
    account.save()
    return account


def test_stow_and_browser_upload_answer_402(live_server, tenant, make_token, overdue, settings):
    token = make_token(tenant, scopes=("upload", "read"))
    auth = {"Authorization": f"Bearer {token}"}
    body, ctype = multipart([to_bytes(make_ct_series(1)[0])])
    stow = requests.post(f"{live_server.url}/t/acme/dicomweb/studies", data=body, timeout=30,
                         headers={**auth, "Content-Type": ctype, "Accept": "application/dicom+json"})
    assert stow.status_code == 402 and "payment is overdue" in stow.json()["error"]
    tus = requests.post(f"{live_server.url}/t/acme/upload/files/", timeout=30, headers={
        **auth, "Tus-Resumable": "1.0.0", "Upload-Length": "100"})
    assert tus.status_code == 402
    assert not Instance.objects.for_tenant(tenant).exists()
    assert files_under(settings.INGEST_TMP_DIR, settings.TIER1_PATH) == []
    # Reading is never blocked.
    qido = requests.get(f"{live_server.url}/t/acme/dicomweb/studies", headers=auth, timeout=30)
    assert qido.status_code in (200, 204)


def test_c_store_gets_a_refusal_status(tenant, overdue, settings):
    DicomPeer.objects.for_tenant(tenant).create(ae_title="MODALITY1")
    ds = make_ct_series(1)[0]
    with running_gateway() as port:
        ae = AE(ae_title="MODALITY1")
        ae.add_requested_context(CTImageStorage)
        assoc = ae.associate("127.0.0.1", port, ae_title=tenant.ae_title)
        assert assoc.is_established
        status = assoc.send_c_store(ds)
        assoc.release()
    assert status.Status == 0x0124 and "payment overdue" in status.ErrorComment
    assert not Instance.objects.for_tenant(tenant).exists()
    assert files_under(settings.INGEST_TMP_DIR, settings.TIER1_PATH) == []


def test_c_find_and_c_get_go_on_while_uploads_are_paused(tenant, overdue, settings):
    """Past grace, C-STORE is refused (above); query and retrieve still work."""
    from pydicom import Dataset
    from pynetdicom import build_role
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as GET

    from tests.archive.test_services_ingest import ingest_bytes

    settings.STRIPE_SECRET_KEY = ""  # stored before the grace ended
    [ds] = make_ct_series(1, 16, 16)
    assert ingest_bytes(tenant, to_bytes(ds)).ok
    settings.STRIPE_SECRET_KEY = "sk_test_overdue"
    DicomPeer.objects.for_tenant(tenant).create(ae_title="WORKSTATION")
    query = Dataset()
    query.QueryRetrieveLevel, query.StudyInstanceUID = "STUDY", ds.StudyInstanceUID
    received = []
    with running_gateway() as port:
        ae = AE(ae_title="WORKSTATION")
        for context in (FIND, GET, CTImageStorage):
            ae.add_requested_context(context)
        assoc = ae.associate("127.0.0.1", port, ae_title=tenant.ae_title, ext_neg=[build_role(CTImageStorage, scp_role=True)],
                             evt_handlers=[(evt.EVT_C_STORE, lambda event: received.append(event.dataset) or 0)])
        found = [answer for status, answer in assoc.send_c_find(query, FIND) if status.Status == 0xFF00]
        final = [status for status, _ in assoc.send_c_get(query, GET)][-1]
        assoc.release()
    assert [a.StudyInstanceUID for a in found] == [ds.StudyInstanceUID]
    assert final.Status == 0x0000 and [r.SOPInstanceUID for r in received] == [ds.SOPInstanceUID]
