"""End to end in headless Chromium on a phone-sized screen: an owner logs in, enrols a TOTP
app (code computed with pyotp from the key the page shows), keeps the backup codes, reaches the
clinic, and the members page fits the screen."""

import shutil

import pyotp
import pytest

from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NO_OVERFLOW = "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"


@pytest.fixture
def page(monkeypatch):
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # between browser steps are ordinary blocking calls, which Django would otherwise refuse.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        yield context.new_page()
        browser.close()


def test_owner_logs_in_and_enrols_2fa_on_a_phone(live_server, tenant, owner, page):
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
