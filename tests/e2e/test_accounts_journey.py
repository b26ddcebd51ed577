"""Accounts in real Chromium: a radiologist who forgot her password sets a new one from the
login page on her phone; an owner whose clinic has no mail server invites a colleague and
copies the invitation link from the members page."""

import re

import pytest
from django.core.cache import cache
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenants import roles
from tenants.models import Invitation
from tests.conftest import PASSWORD
from tests.e2e.conftest import fits_screen, log_in, snap
from tests.servers import wait_for

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a brand new passphrase for Monday 9"


def test_forgot_password_on_a_phone(live_server, tenant, make_member, phone, mailoutbox, settings):
    cache.clear()
    settings.SITE_URL = live_server.url
    radiologist = make_member(tenant, roles.RADIOLOGIST)
    page = phone
    page.goto(f"{live_server.url}/login/")
    page.click("text=Forgot your password?")
    page.fill("input[name=email]", radiologist.email)
    with page.expect_navigation():
        page.click("main button[type=submit]")
    assert "If that address belongs to a CloudPACS account" in page.inner_text("#reset-sent")
    assert fits_screen(page)
    wait_for(lambda: mailoutbox, timeout=10, what="the reset email")
    link = re.search(r"http://\S+/password-reset/\S+/\S+/", mailoutbox[0].body).group(0)

    page.goto(link)
    assert "set-password" in page.url  # the token is out of the address bar
    page.fill("input[name=new_password1]", NEW_PASSWORD)
    page.fill("input[name=new_password2]", NEW_PASSWORD)
    with page.expect_navigation():
        page.click("main button[type=submit]")
    assert "Your password is set" in page.inner_text("main")
    assert fits_screen(page)
    snap(page, "password-reset-done-phone")
    with page.expect_navigation():
        page.click("main a.button")
    page.fill("input[name=email]", radiologist.email)
    page.fill("input[name=password]", NEW_PASSWORD)
    with page.expect_navigation():
        page.click("main button[type=submit]")
    assert "/login/" not in page.url

    # The same link again: a clear page, a way to ask for a new one.
    page.goto(link)
    assert "does not work any more" in page.inner_text("main")
    assert page.get_by_role("link", name="Ask for a new link").is_visible()


def test_owner_copies_an_invitation_link_when_email_fails(live_server, tenant, owner, desktop, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2
    settings.SITE_URL = live_server.url
    page = desktop
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    device = TOTPDevice.objects.create(user=owner, name="owner's phone", confirmed=True)
    members = f"{live_server.url}/t/{tenant.slug}/members/"
    log_in(page, members, owner.email, totp_device=device)
    page.fill("input[name=email]", "new.colleague@example.test")
    page.select_option("select[name=role]", roles.RADIOLOGIST)
    with page.expect_navigation():
        page.click("text=Send invitation")
    notice = page.inner_text("#new-invitation")
    assert "The email could not be sent" in notice
    url = page.input_value("#invite-url")
    assert url.startswith(f"{live_server.url}/invite/")
    row = page.locator("tr", has_text="new.colleague@example.test")
    assert "not sent" in row.inner_text()
    row.get_by_role("button", name="Copy link").click()
    row.get_by_role("button", name="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == url
    assert fits_screen(page)
    snap(page, "members-invitation-desktop")
    invitation = Invitation.objects.for_tenant(tenant).get()
    assert invitation.emailed_at is None and invitation.is_usable


def test_2fa_setup_says_when_codes_are_throttled(live_server, tenant, owner, phone):
    """As the verify page does: after a wrong code, even the right one must wait."""
    import pyotp

    from tests.e2e.conftest import totp_secret

    page = phone
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=email]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.click("main button[type=submit]")
    page.wait_for_url("**/account/2fa/setup/**")
    device = TOTPDevice.objects.get(user=owner, confirmed=False)
    right = pyotp.TOTP(totp_secret(device)).now()
    page.fill("input[name=code]", f"{(int(right) + 1) % 1_000_000:06d}")
    with page.expect_navigation():
        page.click("main button[type=submit]")
    assert "That code is not right" in page.inner_text("main")
    page.fill("input[name=code]", right)
    with page.expect_navigation():
        page.click("main button[type=submit]")
    assert "Too many wrong codes" in page.inner_text("main")
    assert fits_screen(page)


def test_admin_sends_a_member_a_password_reset(live_server, tenant, owner, make_member, desktop, mailoutbox,
                                               settings):
    cache.clear()
    settings.SITE_URL = live_server.url
    member = make_member(tenant, roles.RADIOLOGIST)
    device = TOTPDevice.objects.create(user=owner, name="owner's phone", confirmed=True)
    page = desktop
    log_in(page, f"{live_server.url}/t/{tenant.slug}/members/", owner.email, totp_device=device)
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.locator("tr", has_text=member.email).get_by_role("button", name="Send password reset").click()
    assert f"emailed to {member.email}" in page.inner_text(".messages")
    wait_for(lambda: mailoutbox, timeout=10, what="the reset email")
    assert mailoutbox[0].to == [member.email] and "administrator of your clinic" in mailoutbox[0].body
