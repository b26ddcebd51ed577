"""Operators' billing in the admin: the overview, credits (audited, a negative invoice item
in Stripe), and prices that cannot be changed once in effect."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing import stripe_api
from billing.grace import account_get
from billing.models import BillingAccount, Charge, PriceVersion
from tenants.models import AuditEvent
from tests.billing.test_charges import ingest, run_billing
from tests.conftest import PASSWORD
from tests.dicom_factory import make_ct_series


@pytest.fixture
def ops(login, db):
    from tenants.models import User

    return login(User.objects.create_superuser("ops@cloudpacs.test", PASSWORD))


def test_overview_shows_revenue_failed_payments_and_grace(ops, client, tenant, settings):
    settings.STRIPE_SECRET_KEY = ""
    ingest(tenant, make_ct_series(1))
    ingest(tenant, make_ct_series(1, patient_id="P2"))
    run_billing(tenant)
    account = account_get(tenant)
    account.grace_reason, account.grace_ends_at = BillingAccount.PAYMENT_FAILED, timezone.now() + timedelta(days=3)
    account.save()
    page = client.get("/admin/billing/charge/overview/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Acme Clinic" in text and "1000 USD" in text and "a payment failed" in text
    assert "Doe" not in text


def test_credit_is_audited_and_sent_to_stripe_as_a_negative_item(ops, client, tenant, stripe_on):
    ingest(tenant, make_ct_series(1))
    run_billing(tenant)
    charge = Charge.objects.for_tenant(tenant).get()
    assert charge.state == Charge.SENT
    response = client.post("/admin/billing/charge/", {"action": "credit", "_selected_action": [charge.pk]})
    assert response.status_code == 302
    charge.refresh_from_db()
    assert charge.state == Charge.CREDITED
    run_billing(tenant)  # the credit's outbox work, with retries if Stripe is away
    charge.refresh_from_db()
    assert charge.stripe_credit_item_id
    amounts = sorted(i["amount"] for i in stripe_api.pending_items(account_get(tenant).stripe_customer_id))
    assert amounts == [-500, 500]
    event = AuditEvent.objects.for_tenant(tenant).get(action="billing.charge_credited")
    assert event.actor_label == "operator ops@cloudpacs.test" and event.detail["amount"] == 500
    # Crediting again changes nothing.
    client.post("/admin/billing/charge/", {"action": "credit", "_selected_action": [charge.pk]})
    run_billing(tenant)
    assert len(stripe_api.pending_items(account_get(tenant).stripe_customer_id)) == 2


def test_operator_ends_a_grace_period(ops, client, tenant):
    account = account_get(tenant)
    account.grace_reason, account.grace_ends_at = BillingAccount.PAYMENT_FAILED, timezone.now() - timedelta(days=1)
    account.save()
    client.post("/admin/billing/billingaccount/", {"action": "end_grace", "_selected_action": [account.pk]})
    account.refresh_from_db()
    assert account.grace_ends_at is None
    assert AuditEvent.objects.for_tenant(tenant).filter(action="billing.grace_cleared").exists()


def test_a_price_in_effect_cannot_be_changed(ops, client, default_price):
    price = default_price.prices.get()
    page = client.get(f"/admin/billing/priceversion/{price.pk}/change/")
    assert page.status_code == 200
    assert 'name="study_amount"' not in page.content.decode()  # shown read-only
    future = PriceVersion.objects.create(plan=default_price, currency="usd", study_amount=700,
                                         effective_from=timezone.now() + timedelta(days=30))
    assert 'name="study_amount"' in client.get(f"/admin/billing/priceversion/{future.pk}/change/").content.decode()
