"""End to end in headless Chromium on a phone-sized screen: an owner logs in, enrols a TOTP
app (code computed with pyotp from the key the page shows), keeps the backup codes, reaches the
clinic, and the members page fits the screen."""


import pyotp
import pytest

from tests.conftest import PASSWORD
from tests.e2e.conftest import NO_OVERFLOW

pytestmark = pytest.mark.browser



def test_owner_logs_in_and_enrols_2fa_on_a_phone(live_server, tenant, owner, phone):
    page = phone
    from django_otp.plugins.otp_static.models import StaticToken

    page.goto(live_server.url + "/t/acme/")
    assert "/login/" in page.url
    page.fill("input[name=email]", owner.email)
    page.fill("input[name=password]", "not it at all")
    page.click("main button[type=submit]")
    page.wait_for_load_state()
    assert "not right" in page.inner_text("main")

    page.fill("input[name=email]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/account/2fa/setup/**")
    assert page.locator(".qr svg").is_visible()
    assert page.evaluate(NO_OVERFLOW)
    secret = page.inner_text("code.secret").replace(" ", "")
    page.fill("input[name=code]", pyotp.TOTP(secret).now())
    page.click("main button[type=submit]")
    page.wait_for_load_state()
    shown = sorted(page.locator("ul.codes code").all_inner_texts())
    assert len(shown) == 10
    assert shown == sorted(StaticToken.objects.filter(device__user=owner).values_list("token", flat=True))

    page.click("text=Continue")
    page.wait_for_url(f"{live_server.url}/t/acme/")
    assert "Acme Clinic" in page.inner_text("main")
    # The nav is folded behind the Menu button on a phone; it opens and offers Members.
    page.click("button.nav-toggle")
    page.click("#mainnav >> text=Members")
    page.wait_for_url("**/t/acme/members/")
    assert page.evaluate(NO_OVERFLOW)
