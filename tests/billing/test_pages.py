"""The clinic's billing page, its CSV export, billing details and the card page."""

import csv
import io

import pytest

from billing.models import BillingAccount
from tenants import roles
from tests.billing.test_charges import ingest, run_billing
from tests.dicom_factory import make_ct_series


@pytest.fixture
def admin_client(client, login, tenant, make_member):
    login(make_member(tenant, roles.ADMIN))
    return client


def test_page_shows_this_months_charges_and_total(admin_client, tenant, settings):
    settings.STRIPE_SECRET_KEY = ""
    ingest(tenant, make_ct_series(1))
    ingest(tenant, make_ct_series(1, patient_id="P2"))
    run_billing(tenant)
    page = admin_client.get("/t/acme/billing/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "10.00 USD" in text and "5.00 USD" in text and "not sent" in text
    assert "Card payments are not switched on" in text
    assert "Doe" not in text  # charges carry no patient data


def test_roles_without_billing_cannot_see_it(client, login, tenant, make_member):
    login(make_member(tenant, roles.RADIOLOGIST))
    assert client.get("/t/acme/billing/").status_code == 403
    assert client.get("/t/acme/billing/charges.csv").status_code == 403


def test_csv_export(admin_client, tenant):
    series = make_ct_series(1)
    ingest(tenant, series)
    run_billing(tenant)
    response = admin_client.get("/t/acme/billing/charges.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["study_instance_uid"], r["amount"], r["currency"]) for r in rows] == [
        (series[0].StudyInstanceUID, "500", "usd")]
    assert admin_client.get("/t/acme/billing/charges.csv?month=nope").status_code == 400


def test_billing_details_saved_and_audited(admin_client, tenant):
    response = admin_client.post("/t/acme/billing/details/", {
        "billing_email": "accounts@acme.test", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345",
        "country": "us"})
    assert response.status_code == 302
    account = BillingAccount.objects.for_tenant(tenant).get()
    assert (account.billing_email, account.address_country) == ("accounts@acme.test", "US")
    from tenants.models import AuditEvent

    assert AuditEvent.objects.for_tenant(tenant).filter(action="billing.details_changed").exists()
    bad = admin_client.post("/t/acme/billing/details/", {"billing_email": "not an email", "country": "USA"})
    assert bad.status_code == 400
    page = bad.content.decode()
    assert 'value="not an email"' in page and "valid email" in page  # what was typed, and what is wrong
    account.refresh_from_db()
    assert account.billing_email == "accounts@acme.test"  # nothing changed
    assert admin_client.get("/t/acme/billing/charges.csv?month=9999-12").status_code == 400


def test_card_page_loads_stripe_js_from_its_origin_only(admin_client, stripe_on):
    page = admin_client.get("/t/acme/billing/card/")
    assert page.status_code == 200
    assert f'src="{stripe_on.url}/js.stripe.com/v3/"' in page.content.decode()
    policy = page["Content-Security-Policy"]
    script = next(d for d in policy.split(";") if d.strip().startswith("script-src"))
    assert stripe_on.url in script
    # Every other page keeps the site's own origin only.
    assert stripe_on.url not in admin_client.get("/t/acme/billing/")["Content-Security-Policy"]


def test_card_page_without_stripe_says_so(admin_client, settings):
    settings.STRIPE_SECRET_KEY = ""
    response = admin_client.get("/t/acme/billing/card/", follow=True)
    assert "Card payments are not switched on" in response.content.decode()


def test_grace_banner_for_billing_members(admin_client, tenant, stripe_on):
    from django.db import transaction

    from billing.grace import account_for_update, grace_start

    with transaction.atomic():
        grace_start(account_for_update(tenant), BillingAccount.PAYMENT_FAILED)
    text = admin_client.get("/t/acme/").content.decode()
    assert "A payment failed" in text and "billing page" in text
