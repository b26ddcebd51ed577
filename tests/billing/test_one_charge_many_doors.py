"""One study sent from six clients at once, by STOW-RS, C-STORE and browser upload (tus):
one study, one charge in our database, one invoice item in (local)Stripe."""

import threading

import pytest
import requests
from django.test import Client
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from archive.gateway.models import DicomPeer
from archive.models import Study
from billing.models import Charge
from billing.stripe_push import customer_ensure
from tests.archive.stow_helpers import multipart
from tests.archive.test_gateway import running_gateway
from tests.archive.upload_helpers import TusClient
from tests.billing.test_charges import run_billing
from tests.billing.test_stripe import items_of
from tests.dicom_factory import make_ct_series, to_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def test_six_clients_three_doors_one_charge(live_server, tenant, make_token, stripe_on, settings, tmp_path_factory,
                                 monkeypatch):
    # The test drives the outbox rows itself, in this process (where Stripe is configured):
    # committed rows are not handed to a broker some other test's worker may be reading.
    from archive.outbox import services

    monkeypatch.setattr(services._publisher, "add", lambda ids: None)
    short = tmp_path_factory.mktemp("d")  # the parse process's socket path must fit AF_UNIX's limit
    settings.INGEST_TMP_DIR = str(short / "spool")
    settings.TIER1_PATH = str(short / "tier1")
    settings.UPLOAD_DIR = str(short / "uploads")
    DicomPeer.objects.for_tenant(tenant).create(ae_title="MODALITY1")
    token = make_token(tenant, scopes=("upload",))
    series = make_ct_series(7, 32, 32)
    start = threading.Barrier(6)
    outcomes = []

    def stow(part):
        body, ctype = multipart([to_bytes(ds) for ds in part])
        start.wait()
        response = requests.post(f"{live_server.url}/t/acme/dicomweb/studies", data=body, timeout=60, headers={
            "Authorization": f"Bearer {token}", "Content-Type": ctype, "Accept": "application/dicom+json"})
        outcomes.append(("stow", response.status_code))

    def c_store(part, port):
        ae = AE(ae_title="MODALITY1")
        ae.add_requested_context(CTImageStorage)
        assoc = ae.associate("127.0.0.1", port, ae_title=tenant.ae_title)
        start.wait()
        statuses = [assoc.send_c_store(ds).Status for ds in part]
        assoc.release()
        outcomes.append(("c-store", statuses))

    def browser_upload(ds):
        tus = TusClient(Client(), tenant.slug, headers={"Authorization": f"Bearer {token}"})
        start.wait()
        answer = tus.send(to_bytes(ds), "slice.dcm")
        outcomes.append(("upload", [f["status"] for f in answer["files"]]))

    with running_gateway() as port:
        # Each instance goes through one kind of door (an instance's bytes differ between
        # STOW-RS and C-STORE, whose file meta pynetdicom writes), some of them twice.
        threads = [threading.Thread(target=stow, args=(series[:3],)), threading.Thread(target=stow, args=(series[:3],)),
                   threading.Thread(target=stow, args=(series[3:4],)),
                   threading.Thread(target=c_store, args=(series[4:6], port)),
                   threading.Thread(target=c_store, args=(series[4:6][::-1], port)),
                   threading.Thread(target=browser_upload, args=(series[6],))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert sorted(o[0] for o in outcomes) == ["c-store", "c-store", "stow", "stow", "stow", "upload"]
    expected = {"stow": 200, "c-store": [0, 0], "upload": ["stored"]}
    assert all(o[1] == expected[o[0]] for o in outcomes), outcomes
    study = Study.objects.for_tenant(tenant).get()
    assert study.num_instances == 7
    charge = Charge.objects.for_tenant(tenant).get()
    assert charge.study_id == study.pk
    assert list(run_billing(tenant).values()) == [True]
    assert Charge.objects.for_tenant(tenant).get().state == Charge.SENT
    assert run_billing(tenant) == {}  # nothing left to do, and a re-drive would change nothing
    assert len(items_of(customer_ensure(tenant).stripe_customer_id)) == 1
