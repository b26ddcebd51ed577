"""The automatic logoff as a person meets it, in headless Chromium (the page's clock is
Playwright's, the server's session clock is moved in the database): a banner counts down
two minutes before the end and "Stay signed in" starts the clock again; typing tells the
server the person is there; at zero the page goes to the sign-in page, which says why, and
the logoff is audited once."""

import time

import pytest
from django.contrib.sessions.backends.db import SessionStore

from tenants import idle_logoff, roles
from tenants.audit import AuditEvent
from tests.e2e.conftest import fits_screen, log_in, snap

pytestmark = pytest.mark.browser
LIMIT_MINUTES = 30


def _session(page) -> SessionStore:
    [cookie] = [c for c in page.context.cookies() if c["name"] == "sessionid"]
    return SessionStore(session_key=cookie["value"])


def _server_seconds_left(page, seconds: int) -> None:
    """Move the server's record of the person's last activity so the session ends in
    `seconds` (negative: it is over)."""
    session = _session(page)
    session[idle_logoff.ACTIVE_AT] = int(time.time()) - (LIMIT_MINUTES * 60 + idle_logoff.SESSION_TOUCH_SECONDS
                                                         - seconds)
    session.save()


def test_the_page_warns_keeps_a_present_person_and_signs_out_an_absent_one(live_server, tenant, make_member,
                                                                           desktop, settings):
    settings.SESSION_IDLE_MINUTES = LIMIT_MINUTES
    user = make_member(tenant, roles.RADIOLOGIST)
    page = desktop
    page.clock.install()
    worklist = f"{live_server.url}/t/{tenant.slug}/studies/"
    log_in(page, worklist, user.email)
    banner = page.locator(".idle-warning")
    assert banner.count() == 0

    # Two minutes before the earliest end, the page asks the server: 90 s are left.
    _server_seconds_left(page, 90)
    page.clock.fast_forward(f"{LIMIT_MINUTES - 2}:01")
    banner.wait_for()
    assert "signed out in 1:" in banner.inner_text()
    with page.expect_response(lambda r: "/account/session/" in r.url and r.request.method == "POST"):
        banner.get_by_role("button", name="Stay signed in").click()
    banner.wait_for(state="detached")
    assert time.time() - _session(page)[idle_logoff.ACTIVE_AT] < 30  # the server's clock started again

    # Typing in the page is the person being there: told at most once a minute.
    page.clock.fast_forward("01:01")
    with page.expect_request(lambda r: "/account/session/" in r.url and r.method == "POST"):
        page.locator("input[name=name]").press_sequentially("ab")

    # Away: at the end, the page's question ends the session and it goes to sign in.
    _server_seconds_left(page, -5)
    with page.expect_navigation(url="**/login/**"):
        page.clock.fast_forward(f"{LIMIT_MINUTES}:00")
    assert f"idle={LIMIT_MINUTES}" in page.url and "auto_refresh" not in page.url
    assert f"signed out after {LIMIT_MINUTES} minutes without activity" in page.inner_text("main")
    [event] = AuditEvent.objects.for_tenant(tenant).filter(action="auth.logout", actor_id=str(user.pk))
    assert event.detail == {"reason": "idle"}
    page.goto(worklist)
    assert "/login/" in page.url  # the session is over, not only this page


def test_the_warning_fits_a_phone(live_server, tenant, make_member, phone, settings):
    settings.SESSION_IDLE_MINUTES = LIMIT_MINUTES
    user = make_member(tenant, roles.VIEWER)
    phone.clock.install()
    log_in(phone, f"{live_server.url}/t/{tenant.slug}/studies/", user.email)
    _server_seconds_left(phone, 100)
    phone.clock.fast_forward(f"{LIMIT_MINUTES - 2}:01")
    banner = phone.locator(".idle-warning")
    banner.wait_for()
    assert banner.get_by_role("button", name="Stay signed in").is_visible()
    assert fits_screen(phone)
    snap(phone, "idle-warning-phone")
