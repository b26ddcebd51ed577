"""A clinic owner adds a card on a phone, in real Chromium: Stripe.js is localstripe's own
shim (in place of js.stripe.com), the SetupIntent is confirmed against localstripe, and
the card is recorded; a declined card gets a clear message and nothing changes."""

import re

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice

from billing.models import BillingAccount
from tests.billing.conftest import localstripe, stripe_on  # noqa: F401 - fixtures
from tests.e2e.conftest import fits_screen, log_in

pytestmark = pytest.mark.browser


def fill_card(page, number: str) -> None:
    # localstripe's shim renders plain inputs named by placeholder (Stripe.js uses an iframe).
    page.get_by_placeholder("number").fill(number)
    page.get_by_placeholder("exp_month").fill("12")
    page.get_by_placeholder("exp_year").fill("30")
    page.get_by_placeholder("cvc").fill("123")
    page.get_by_placeholder("postal_code").fill("75001")


def test_owner_adds_a_card_and_a_declined_one_is_refused(live_server, tenant, owner, phone, e2e_dirs, stripe_on):
    page = phone
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    device = TOTPDevice.objects.create(user=owner, name="owner's phone", confirmed=True)
    log_in(page, f"{live_server.url}/t/{tenant.slug}/billing/", owner.email, totp_device=device)
    page.goto(f"{live_server.url}/t/{tenant.slug}/billing/card/")
    fill_card(page, "4000000000000002")  # declined when set up
    page.click("#card-submit")
    # A locator's wait, not wait_for_function: a string predicate that is false at first is
    # polled by eval in the page, which the page's CSP (no 'unsafe-eval') refuses; CI saw it.
    page.locator("#card-error").filter(has_text=re.compile(r"\S")).wait_for()
    assert "declined" in page.inner_text("#card-error").lower()
    assert not BillingAccount.objects.for_tenant(tenant).get().has_card

    page.goto(f"{live_server.url}/t/{tenant.slug}/billing/card/")  # a new SetupIntent
    fill_card(page, "4242424242424242")
    with page.expect_navigation(url=f"{live_server.url}/t/{tenant.slug}/billing/"):
        page.click("#card-submit")
    assert "ending 4242 saved" in page.inner_text(".messages")
    account = BillingAccount.objects.for_tenant(tenant).get()
    assert (account.card_last4, account.payment_method_id[:3]) == ("4242", "pm_")
    assert fits_screen(page)
    assert violations == []
