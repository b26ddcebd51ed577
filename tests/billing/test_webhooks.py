"""/billing/stripe/webhook/ over real HTTP: signatures, replays, and what each event does,
including events localstripe itself delivers."""

import time

import pytest
import requests

from billing.models import BillingAccount, StripeEvent
from billing.stripe_push import customer_ensure
from tests.billing.conftest import WEBHOOK_SECRET, event, signed
from tests.servers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def post(live_server, body: bytes, signature: str | None):
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return requests.post(f"{live_server.url}/billing/stripe/webhook/", data=body, headers=headers, timeout=10)


@pytest.mark.parametrize("how", ["forged", "missing", "expired", "other secret", "not json"])
def test_bad_signatures_are_refused_and_change_nothing(live_server, stripe_on, tenant, how):
    account = customer_ensure(tenant)
    body, header = signed(event("invoice.payment_failed", {"object": "invoice", "id": "in_x",
                                                           "customer": account.stripe_customer_id}))
    if how == "forged":
        body = body.replace(b"in_x", b"in_y")
    elif how == "missing":
        header = None
    elif how == "expired":
        body, header = signed(event("invoice.payment_failed", {"id": "in_x"}), at=int(time.time()) - 3600)
    elif how == "other secret":
        body, header = signed(event("invoice.payment_failed", {"id": "in_x"}), secret="whsec_other")
    elif how == "not json":
        body, header = signed({"id": "evt_1"}, secret=WEBHOOK_SECRET)
        body = b"{not json"
    response = post(live_server, body, header)
    assert response.status_code == 400
    assert not StripeEvent.objects.exists()
    assert BillingAccount.objects.for_tenant(tenant).get().grace_ends_at is None


def test_payment_failed_starts_grace_once_and_a_replay_is_ignored(live_server, stripe_on, tenant, mailoutbox,
                                                                  make_member):
    from tenants import roles

    make_member(tenant, roles.OWNER, email="owner@acme.test")
    account = customer_ensure(tenant)
    failed = event("invoice.payment_failed", {"object": "invoice", "id": "in_1", "status": "open",
                                               "customer": account.stripe_customer_id, "amount_due": 500,
                                               "currency": "usd"})
    body, header = signed(failed)
    first = post(live_server, body, header)
    assert first.status_code == 200 and first.json()["outcome"] == "payment failed: grace started"
    account.refresh_from_db()
    assert account.grace_reason == "payment_failed"
    assert [m.to for m in mailoutbox] == [["owner@acme.test"]]
    replay = post(live_server, *signed(failed))
    assert replay.status_code == 200 and replay.json()["outcome"] == "replayed: ignored"
    assert StripeEvent.objects.count() == 1 and len(mailoutbox) == 1
    body = StripeEvent.objects.get().body
    assert body["data"]["object"]["id"] == "in_1"  # the event as Stripe sent it is kept


def test_unknown_customer_is_recorded_and_ignored(live_server, stripe_on):
    response = post(live_server, *signed(event("invoice.payment_failed", {"id": "in_2", "customer": "cus_nobody"})))
    assert response.status_code == 200
    stored = StripeEvent.objects.get()
    assert stored.outcome == "unknown customer: ignored" and stored.tenant is None


def test_card_attached_and_detached_and_customer_deleted(live_server, stripe_on, tenant):
    from billing.models import Charge
    from tests.billing.test_charges import ingest, run_billing
    from tests.dicom_factory import make_ct_series

    account = customer_ensure(tenant)
    card = {"id": "pm_1", "object": "payment_method", "customer": account.stripe_customer_id,
            "card": {"brand": "visa", "last4": "4242", "exp_month": 3, "exp_year": 2031}}
    assert post(live_server, *signed(event("payment_method.attached", card))).status_code == 200
    account.refresh_from_db()
    assert (account.card_brand, account.card_last4, account.card_exp) == ("visa", "4242", "03/2031")
    assert post(live_server, *signed(event("payment_method.detached", {**card, "customer": None}))).status_code == 200
    account.refresh_from_db()
    assert account.payment_method_id == ""
    # A charge sent to the customer, then the customer deleted in Stripe: the charge goes
    # again, once, to the next customer.
    ingest(tenant, make_ct_series(1))
    run_billing(tenant)
    old_customer = account.stripe_customer_id
    deleted = {"id": old_customer, "object": "customer", "deleted": True}
    answer = post(live_server, *signed(event("customer.deleted", deleted)))
    assert answer.json()["outcome"] == "customer deleted: 1 charges go to the next one"
    account.refresh_from_db()
    assert account.stripe_customer_id == "" and account.customer_generation == 1
    run_billing(tenant)
    charge = Charge.objects.for_tenant(tenant).get()
    new_customer = customer_ensure(tenant).stripe_customer_id
    assert charge.state == Charge.SENT and new_customer != old_customer
    from billing import stripe_api

    assert [i["id"] for i in stripe_api.pending_items(new_customer)] == [charge.stripe_invoice_item_id]


def test_an_old_event_delivered_late_does_not_undo_a_newer_one(live_server, stripe_on, tenant):
    account = customer_ensure(tenant)
    invoice = {"object": "invoice", "id": "in_late", "customer": account.stripe_customer_id, "amount_due": 500,
               "currency": "usd"}
    failed = event("invoice.payment_failed", {**invoice, "status": "open"})
    paid = event("invoice.paid", {**invoice, "status": "paid", "amount_paid": 500})
    failed["created"], paid["created"] = 1_000, 2_000
    post(live_server, *signed(failed))
    post(live_server, *signed(paid))
    account.refresh_from_db()
    assert account.grace_ends_at is None
    again = dict(failed, id="evt_redelivered_copy")  # Stripe's retry of the first, days later
    assert post(live_server, *signed(again)).json()["outcome"] == "older than what we have: ignored"
    account.refresh_from_db()
    assert account.grace_ends_at is None


def test_localstripe_delivers_its_own_events(live_server, stripe_on, tenant):
    """localstripe signs and POSTs customer.updated / invoice events itself, about a second
    after the API call: they arrive, verify, and are stored once."""
    stripe_on.configure_webhook("cloudpacs", f"{live_server.url}/billing/stripe/webhook/", WEBHOOK_SECRET)
    account = customer_ensure(tenant)
    from billing import stripe_api

    stripe_api.customer_update(account.stripe_customer_id, email="billing@acme.test")
    stored = wait_for(lambda: StripeEvent.objects.filter(type="customer.updated").first(), timeout=15,
                      what="localstripe's customer.updated event")
    assert stored.body["data"]["object"]["id"] == account.stripe_customer_id


def test_invoice_paid_ends_the_grace_it_started(live_server, stripe_on, tenant):
    account = customer_ensure(tenant)
    invoice = {"object": "invoice", "id": "in_9", "customer": account.stripe_customer_id, "amount_due": 500,
               "currency": "usd"}
    post(live_server, *signed(event("invoice.payment_failed", {**invoice, "status": "open"})))
    account.refresh_from_db()
    assert account.grace_reason == "payment_failed"
    paid = post(live_server, *signed(event("invoice.paid", {**invoice, "status": "paid", "amount_paid": 500})))
    assert paid.status_code == 200
    account.refresh_from_db()
    assert account.grace_ends_at is None
    from billing.models import Invoice

    assert Invoice.objects.for_tenant(tenant).get(stripe_id="in_9").status == "paid"
