"""Shared fixtures for the end-to-end journeys: one headless Chromium per test module, a
fresh browser context (cookies, storage) per test, phone and desktop viewports, and the
login steps a person takes (password, then a TOTP code computed from the device key).

The live server (pytest-django `live_server`) is one per session and runs in a thread of
this process, so tests create their data with the ORM and read back what the pages wrote.
"""

import base64
import os
import shutil
from collections.abc import Iterator

import pyotp
import pytest

from tests.conftest import PASSWORD

CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "device_scale_factor": 2}
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
# Nothing on the page is wider than the screen: no sideways scrolling of the page, nor of a
# table inside its scrolling wrapper (on a phone, tables become cards that must fit).
NO_OVERFLOW = "() => document.documentElement.scrollWidth <= window.innerWidth"
WIDE_TABLES = """() => [...document.querySelectorAll('.table-wrap')]
    .filter(w => w.scrollWidth > w.clientWidth + 1)
    .map(w => (w.querySelector('table') || w).className || 'table')"""
# Set E2E_SCREENSHOTS=1 to keep a full-page picture of each page at /tmp/e2e-<name>.png.
SCREENSHOTS = os.environ.get("E2E_SCREENSHOTS") == "1"


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # between browser steps are ordinary blocking calls, which Django would otherwise refuse.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as p:
            chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            yield chromium
            chromium.close()


def _page(browser, options: dict) -> Iterator:
    context = browser.new_context(**options)
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    # A script error on any page is a bug even when the test's checks passed.
    assert errors == [], errors


@pytest.fixture
def phone(browser):
    yield from _page(browser, PHONE)


@pytest.fixture
def desktop(browser):
    yield from _page(browser, DESKTOP)


@pytest.fixture
def e2e_dirs(settings, tmp_path):
    """Spool, tier 1 and upload folders of this test only (the live server thread shares
    these settings), so parallel suites never see each other's files."""
    settings.INGEST_TMP_DIR = str(tmp_path / "spool")
    settings.TIER1_PATH = str(tmp_path / "tier1")
    settings.UPLOAD_DIR = str(tmp_path / "uploads")
    return tmp_path


def totp_secret(device) -> str:
    """The base32 secret an authenticator app would hold for a django-otp TOTP device."""
    return base64.b32encode(bytes.fromhex(device.key)).decode()


def log_in(page, url: str, email: str, *, totp_device=None) -> None:
    """Open `url` signed out, pass the login form (and the 2FA step), land back on `url`."""
    page.goto(url)
    assert "/login/" in page.url
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    if totp_device is not None:
        page.wait_for_url("**/account/2fa/verify/**")
        page.fill("input[name=code]", pyotp.TOTP(totp_secret(totp_device)).now())
        page.click("main button[type=submit]")
    page.wait_for_url(url)


def nav_to(page, label: str) -> None:
    """Follow a link of the main menu the way a person would (on a phone, open it first)."""
    if not page.locator("#mainnav").is_visible():
        page.click("button.nav-toggle")
    with page.expect_navigation():
        page.locator("#mainnav").get_by_role("link", name=label, exact=True).click()


def fits_screen(page) -> bool:
    wide = page.evaluate(WIDE_TABLES)
    assert wide == [], f"tables scroll sideways on {page.url}: {wide}"
    return page.evaluate(NO_OVERFLOW)


def snap(page, name: str) -> None:
    if SCREENSHOTS:
        page.screenshot(path=f"/tmp/e2e-{name}.png", full_page=True)
