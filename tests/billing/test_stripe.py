"""Charges to Stripe, through localstripe: sent once, whatever fails on the way."""

import stripe

from billing import stripe_api
from billing.models import Charge, Invoice
from billing.stripe_push import charge_push, customer_ensure
from billing.tasks import invoice_month, send_unsent
from tests.billing.test_charges import ingest, run_billing
from tests.dicom_factory import make_ct_series


def items_of(customer_id: str) -> list:
    return stripe_api.pending_items(customer_id)


def test_priced_charge_becomes_one_invoice_item(tenant, stripe_on):
    ingest(tenant, make_ct_series(2))
    assert all(run_billing(tenant).values())
    charge = Charge.objects.for_tenant(tenant).get()
    assert charge.state == Charge.SENT and charge.stripe_invoice_item_id.startswith("ii_")
    customer = customer_ensure(tenant).stripe_customer_id
    [item] = items_of(customer)
    assert (item["id"], item["amount"], item["currency"]) == (charge.stripe_invoice_item_id, 500, "usd")
    assert item["metadata"]["charge"] == str(charge.uuid)
    assert charge.study_instance_uid not in item["description"]  # no study identifiers leave us
    # Pushing again (a retry, a re-driven row) changes nothing.
    charge.state = Charge.PRICED
    charge.save()
    charge_push(charge)
    assert len(items_of(customer)) == 1


def test_a_push_that_died_after_stripe_answered_is_not_sent_twice(tenant, stripe_on, monkeypatch):
    ingest(tenant, make_ct_series(1))
    real = stripe_api.invoice_item_create

    def dies_after_stripe_made_it(**kwargs):
        real(**kwargs)
        raise ConnectionResetError("the worker died before recording the item")

    monkeypatch.setattr(stripe_api, "invoice_item_create", dies_after_stripe_made_it)
    results = run_billing(tenant)
    assert isinstance(next(iter(results.values())), ConnectionResetError)
    charge = Charge.objects.for_tenant(tenant).get()
    assert charge.state == Charge.PRICED and charge.first_push_at is not None
    monkeypatch.setattr(stripe_api, "invoice_item_create", real)
    # localstripe ignores idempotency keys, so only our own look-up stops a second item.
    assert all(run_billing(tenant).values())
    customer = customer_ensure(tenant).stripe_customer_id
    assert len(items_of(customer)) == 1
    assert Charge.objects.for_tenant(tenant).get().stripe_invoice_item_id == items_of(customer)[0]["id"]


def test_stripe_outage_keeps_the_charge_and_it_goes_later(tenant, stripe_on, settings):
    ingest(tenant, make_ct_series(1))
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens there
    results = run_billing(tenant)
    assert isinstance(next(iter(results.values())), stripe.APIConnectionError)
    assert Charge.objects.for_tenant(tenant).get().state == Charge.PRICED
    settings.STRIPE_API_BASE = stripe_on.url
    assert all(run_billing(tenant).values())
    assert Charge.objects.for_tenant(tenant).get().state == Charge.SENT


def test_charges_recorded_while_stripe_was_off_are_sent_once_it_is_on(tenant, stripe_on, settings):
    key = settings.STRIPE_SECRET_KEY
    settings.STRIPE_SECRET_KEY = ""
    ingest(tenant, make_ct_series(1))
    ingest(tenant, make_ct_series(1, patient_id="P2"))
    run_billing(tenant)
    assert set(Charge.objects.for_tenant(tenant).values_list("state", flat=True)) == {Charge.PRICED}
    settings.STRIPE_SECRET_KEY = key
    assert send_unsent() == 2
    assert send_unsent() == 0  # queued once
    run_billing(tenant)
    assert set(Charge.objects.for_tenant(tenant).values_list("state", flat=True)) == {Charge.SENT}
    assert len(items_of(customer_ensure(tenant).stripe_customer_id)) == 2


def _zero_subscription(customer_id: str) -> None:
    """localstripe makes an invoice only for a customer with a subscription (real Stripe
    does not need one): give the test's customer a free one, before any item exists."""
    client = stripe_api.client()
    product = client.v1.products.create(params={"name": "Base", "type": "service"})
    plan_id = f"zero-{customer_id}"
    client.v1.plans.create(params={"id": plan_id, "product": product.id, "amount": 0, "currency": "usd",
                                   "interval": "month"})
    client.v1.subscriptions.create(params={"customer": customer_id, "items": [{"plan": plan_id}]})


def _card(tenant, customer_id: str, number: str) -> None:
    """A card on the customer, as the card page leaves it (here without the browser)."""
    from django.db import transaction

    from billing.cards import card_on_file
    from billing.grace import account_for_update

    client = stripe_api.client()
    pm = client.v1.payment_methods.create(params={"type": "card", "card": {
        "number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
    client.v1.payment_methods.attach(pm.id, params={"customer": customer_id})
    client.v1.customers.update(customer_id, params={"invoice_settings": {"default_payment_method": pm.id}})
    with transaction.atomic():
        card_on_file(account_for_update(tenant), pm.to_dict())


def _last_month(tenant):
    from datetime import timedelta

    from django.utils import timezone

    Charge.objects.for_tenant(tenant).update(recorded_at=timezone.now() - timedelta(days=40))


def test_monthly_invoice_is_made_once_and_paid(tenant, stripe_on):
    customer = customer_ensure(tenant).stripe_customer_id
    _zero_subscription(customer)
    _card(tenant, customer, "4242424242424242")
    ingest(tenant, make_ct_series(1))
    run_billing(tenant)
    _last_month(tenant)
    assert invoice_month() == 1
    invoice = Invoice.objects.for_tenant(tenant).get()
    assert (invoice.status, invoice.amount_paid) == ("paid", 500)
    assert Charge.objects.for_tenant(tenant).get().state == Charge.INVOICED
    assert invoice_month() == 0  # nothing left to invoice
    assert Invoice.objects.for_tenant(tenant).count() == 1


def test_declined_card_starts_grace_and_uploads_go_on(tenant, stripe_on, mailoutbox, make_member,
                                                     django_capture_on_commit_callbacks):
    from tenants import roles

    make_member(tenant, roles.OWNER, email="owner@acme.test")
    customer = customer_ensure(tenant).stripe_customer_id
    _zero_subscription(customer)
    _card(tenant, customer, "4000000000000341")  # attaches, declines when charged
    ingest(tenant, make_ct_series(1))
    run_billing(tenant)
    _last_month(tenant)
    with django_capture_on_commit_callbacks(execute=True):
        invoice_month()
    invoice = Invoice.objects.for_tenant(tenant).get()
    assert invoice.status == "open" and "declined" in invoice.last_payment_error
    from billing.grace import account_get, upload_refusal

    account = account_get(tenant)
    assert account.grace_reason == "payment_failed" and account.grace_ends_at is not None
    assert upload_refusal(tenant) is None  # within grace: uploads go on
    assert any("owner@acme.test" in m.to for m in mailoutbox)


def test_no_card_on_file_starts_grace_and_tells_the_admin(tenant, stripe_on, mailoutbox, make_member,
                                                          django_capture_on_commit_callbacks):
    from billing.grace import account_get, upload_refusal
    from tenants import roles

    make_member(tenant, roles.ADMIN, email="admin@acme.test")
    ingest(tenant, make_ct_series(1))
    with django_capture_on_commit_callbacks(execute=True):
        run_billing(tenant)
    account = account_get(tenant)
    assert account.grace_reason == "no_payment_method"
    assert upload_refusal(tenant) is None  # uploads go on during grace
    assert any("admin@acme.test" in m.to and "no card is on file" in m.body for m in mailoutbox)
    # Within the free allowance nothing is due, so nobody is chased for a card.
    from billing.models import PriceVersion

    PriceVersion.objects.create(tenant=tenant, currency="usd", study_amount=500, free_studies_per_month=10)
    from billing.grace import grace_clear

    grace_clear(account, "test")
    ingest(tenant, make_ct_series(1, patient_id="P2"))
    run_billing(tenant)
    assert account_get(tenant).grace_ends_at is None
