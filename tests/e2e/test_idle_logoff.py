"""The automatic logoff as a person meets it, in headless Chromium (the page's clock is
Playwright's, the server's session clock is moved in the database): a banner counts down
two minutes before the end, on screen wherever the page is scrolled; a key or "Stay signed
in" starts the clock again, in one request however many keys; typing tells the server the
person is there; at zero the page goes to the sign-in page, which says why, and the logoff
is audited once."""

import time

import pytest
from django.contrib.sessions.backends.db import SessionStore

from tenants import idle_logoff, roles
from tenants.audit import AuditEvent
from tests.e2e.conftest import fits_screen, log_in, snap

pytestmark = pytest.mark.browser
LIMIT_MINUTES = 30
# A page just loaded or told the server of activity has LIMIT + 1 minutes (the server notes
# activity once a minute): it asks the server two minutes before that.
WARNED = f"{LIMIT_MINUTES - 1}:01"


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

    posts = []
    page.on("request", lambda r: posts.append(r) if "/account/session/" in r.url and r.method == "POST" else None)
    # Two minutes before the earliest end, the page asks the server: 90 s are left.
    _server_seconds_left(page, 90)
    page.clock.fast_forward(WARNED)
    banner.wait_for()
    assert "signed out in 1:" in banner.inner_text() and banner.get_attribute("role") == "alert"
    # A burst of keys while it shows: one request, not one per key.
    with page.expect_response(lambda r: "/account/session/" in r.url and r.request.method == "POST"):
        for _ in range(20):
            page.keyboard.press("Shift")
    banner.wait_for(state="detached")
    assert len(posts) == 1
    assert time.time() - _session(page)[idle_logoff.ACTIVE_AT] < 30  # the server's clock started again

    # Again, and the button alone (a screen reader's or voice control's activation is a
    # click without a key or pointer before it).
    _server_seconds_left(page, 90)
    page.clock.fast_forward(WARNED)
    banner.wait_for()
    with page.expect_response(lambda r: "/account/session/" in r.url and r.request.method == "POST"):
        banner.get_by_role("button", name="Stay signed in").dispatch_event("click")
    banner.wait_for(state="detached")

    # Typing in the page is the person being there: told at most once a minute.
    page.clock.fast_forward("01:01")
    with page.expect_response(lambda r: "/account/session/" in r.url and r.request.method == "POST"):
        page.locator("input[name=name]").press_sequentially("ab")
    page.locator("input[name=name]").press_sequentially("cd")  # within the minute: not told again
    assert len(posts) == 3  # the burst's one, the button's, and the first of these keys

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
    phone.clock.fast_forward(WARNED)
    phone.evaluate("document.body.style.minHeight = '4000px'; window.scrollTo(0, 3000)")  # far down a long page
    banner = phone.locator(".idle-warning")
    banner.wait_for()
    assert banner.get_by_role("button", name="Stay signed in").is_visible()
    box, height = banner.bounding_box(), phone.viewport_size["height"]
    assert box["y"] >= 0 and box["y"] + box["height"] <= height  # on screen, wherever the page is
    assert fits_screen(phone)
    snap(phone, "idle-warning-phone")
