"""A real Celery worker SIGKILLed in the middle of pushing a charge to (local)Stripe: after
Stripe made the invoice item and before the worker recorded it. The next worker's push
finds the item and makes no second one: one charge, one invoice item."""

import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import transaction

from archive.outbox.services import outbox_sweep
from billing import stripe_api
from billing.grace import account_get
from billing.models import Charge
from tests.archive.test_services_ingest import ingest_bytes
from tests.billing.conftest import default_price, localstripe  # noqa: F401 - fixtures
from tests.dicom_factory import make_ct_series, to_bytes
from tests.servers import wait_for


class HoldingProxy:
    """Forwards to localstripe; an invoice item's answer is held back once it is made, so a
    test can kill the client between Stripe's work and the client hearing of it."""

    def __init__(self, upstream: str):
        self.item_made, self.release = threading.Event(), threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                request = urllib.request.Request(upstream + self.path, data=body, method=self.command,
                                                 headers=headers)
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        status, payload = answer.status, answer.read()
                except urllib.error.HTTPError as error:
                    status, payload = error.code, error.read()
                if self.command == "POST" and self.path.startswith("/v1/invoiceitems"):
                    proxy.item_made.set()
                    proxy.release.wait(60)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client is gone

            do_GET = do_POST = do_DELETE = _forward

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stripe_env(localstripe, settings):  # noqa: F811
    settings.STRIPE_SECRET_KEY = "sk_test_cloudpacs"
    settings.STRIPE_API_BASE = localstripe.url
    settings.STRIPE_NETWORK_RETRIES = 0
    return {"STRIPE_SECRET_KEY": "sk_test_cloudpacs", "STRIPE_NETWORK_RETRIES": "0", "BILLING_SETTLE_SECONDS": "0"}


def test_worker_killed_mid_push_bills_once(tenant, start_worker, stripe_env, localstripe, settings,  # noqa: F811
                                            default_price):  # noqa: F811
    proxy = HoldingProxy(localstripe.url)
    try:
        worker = start_worker(STRIPE_API_BASE=proxy.url, **stripe_env)
        with transaction.atomic():  # committed: its outbox rows go to the worker
            assert ingest_bytes(tenant, to_bytes(make_ct_series(1)[0])).ok
        assert proxy.item_made.wait(60), worker.log_tail()
        worker.kill()  # Stripe has made the item; the worker never hears of it
    finally:
        proxy.close()
    charge = Charge.objects.for_tenant(tenant).get()
    assert charge.state == Charge.PRICED and charge.first_push_at is not None
    customer = account_get(tenant).stripe_customer_id
    assert len(stripe_api.pending_items(customer)) == 1

    start_worker(STRIPE_API_BASE=localstripe.url, **stripe_env)
    settings.STORAGE_SWEEP_IDLE_SECONDS = 0
    outbox_sweep()  # what beat does every minute: the killed worker's row goes out again
    wait_for(lambda: Charge.objects.for_tenant(tenant).get().state == Charge.SENT, timeout=60,
             what="the charge sent by the second worker")
    [item] = stripe_api.pending_items(customer)
    assert Charge.objects.for_tenant(tenant).get().stripe_invoice_item_id == item["id"]
