"""Sign-ins in the audit log: logins, failed logins, lockouts, logouts, two-factor
enrolment, verification and removal, backup codes and password changes, each in every
clinic of the person, with the client's address and user agent, never a secret."""

from base64 import b32encode

import pyotp
import pytest
from django.core.cache import cache
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenants import roles
from tenants.audit import AuditEvent
from tenants.models import Tenant
from tests.conftest import PASSWORD
from tests.tenants.audit_tamper import verify

pytestmark = pytest.mark.usefixtures("audit_master_key", "audit_regions")

AGENT = "Mozilla/5.0 (SignInTest) Chromium/131"
CLIENT_IP = "203.0.113.7"  # what the one trusted proxy appended
WRONG_PASSWORD = "not the password at all 99"


@pytest.fixture(autouse=True)
def _behind_one_proxy(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.LOGIN_MAX_FAILURES = 3
    settings.LOGIN_LOCKOUT_MINUTES = 15
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def browser(client):
    """The test client as a browser behind our proxy: every request carries the same
    user agent and a forged address left of the one the proxy saw."""
    client.defaults.update(HTTP_USER_AGENT=AGENT, HTTP_X_FORWARDED_FOR=f"6.6.6.6, {CLIENT_IP}")
    return client


@pytest.fixture
def third_tenant(make_tenant):
    return make_tenant("third")


@pytest.fixture
def person(tenant, other_tenant, make_member):
    """A radiologist at acme who is also a viewer at other."""
    user = make_member(tenant, roles.RADIOLOGIST, email="rad@acme.test")
    make_member(other_tenant, roles.VIEWER, email=user.email)
    return user


def signins(tenant, action=None):
    events = AuditEvent.objects.for_tenant(tenant).filter(action__startswith="auth.").order_by("seq")
    return list(events.filter(action=action) if action else events)


def assert_in_both_clinics(person, clinics, action, **detail):
    """One `action` event in each clinic, naming the person, with address and agent."""
    for clinic in clinics:
        events = signins(clinic, action)
        assert len(events) == 1, (clinic.slug, [e.action for e in signins(clinic)])
        event = events[0]
        assert (event.actor_type, event.actor_id, event.actor_label) == (
            AuditEvent.USER, str(person.pk), person.email)
        assert (event.object_type, event.object_id) == ("user", str(person.pk))
        assert event.ip == CLIENT_IP and event.user_agent == AGENT
        for key, value in detail.items():
            assert event.detail[key] == value, (action, event.detail)


def assert_no_secret(*secrets):
    for event in AuditEvent.unscoped.all():
        stored = " ".join(str(v) for v in (event.actor_label, event.object_id, event.user_agent,
                                            event.detail))
        for secret in secrets:
            assert secret not in stored, event.action


def password_login(browser, email, password=PASSWORD):
    return browser.post("/login/", {"email": email, "password": password})


def totp(device):
    return pyotp.TOTP(b32encode(device.bin_key).decode()).now()


def test_login_and_logout_in_every_clinic_of_the_person(browser, person, tenant, other_tenant,
                                                        third_tenant):
    assert password_login(browser, person.email).status_code == 302
    assert_in_both_clinics(person, [tenant, other_tenant], "auth.login")
    assert browser.post("/logout/").status_code == 302
    assert_in_both_clinics(person, [tenant, other_tenant], "auth.logout")
    assert signins(third_tenant) == []  # not one of the person's clinics
    assert "auth.login" not in [e.action for e in AuditEvent.objects.for_tenant(third_tenant)]
    assert_no_secret(PASSWORD)
    chains = {line.split(":")[0]: line for line in verify().splitlines()}
    for slug in ("acme", "other", "third"):
        assert "chain intact" in chains[slug], chains


def test_failed_login_is_recorded_without_the_password(browser, person, tenant, other_tenant):
    response = password_login(browser, person.email.upper(), WRONG_PASSWORD)
    assert response.status_code == 200 and "_auth_user_id" not in browser.session
    assert_in_both_clinics(person, [tenant, other_tenant], "auth.login_failed", reason="password")
    assert signins(tenant, "auth.login") == []
    assert_no_secret(WRONG_PASSWORD)


def test_unknown_email_records_nothing_and_creates_no_clinic(browser, person, tenant):
    events, clinics = AuditEvent.unscoped.count(), Tenant.objects.count()
    unknown = password_login(browser, "ghost@nowhere.test", WRONG_PASSWORD)
    known = password_login(browser, person.email, WRONG_PASSWORD)
    # The page says the same either way, so it does not tell which address has an account.
    assert unknown.status_code == known.status_code == 200
    assert b"not right" in unknown.content and b"not right" in known.content
    assert Tenant.objects.count() == clinics
    assert AuditEvent.unscoped.count() == events + 2  # the known person's two clinics only
    assert not AuditEvent.unscoped.filter(actor_label__icontains="ghost").exists()


def test_lockout_follows_the_last_failure(browser, person, tenant, other_tenant):
    for _ in range(3):
        password_login(browser, person.email, WRONG_PASSWORD)
    for clinic in (tenant, other_tenant):
        assert [e.action for e in signins(clinic)] == ["auth.login_failed"] * 3 + ["auth.lockout"]
    assert_in_both_clinics(person, [tenant, other_tenant], "auth.lockout", minutes=15)
    # While locked, attempts are refused before the password is checked and not recorded:
    # anyone could send them without limit and fill every clinic's log.
    password_login(browser, person.email, PASSWORD)
    assert len(signins(tenant)) == 4


def test_second_factor_failure_and_success(browser, person, tenant, other_tenant):
    device = TOTPDevice.objects.create(user=person, name="phone", confirmed=True)
    password_login(browser, person.email)
    assert_in_both_clinics(person, [tenant, other_tenant], "auth.login", second_factor="pending")
    wrong = "000000" if totp(device) != "000000" else "111111"
    response = browser.post("/account/2fa/verify/", {"code": wrong})
    assert response.status_code == 200
    assert_in_both_clinics(person, [tenant, other_tenant], "auth.login_failed",
                           reason="second_factor")
    device.refresh_from_db()
    device.throttling_failure_count, device.throttling_failure_timestamp = 0, None
    device.save()
    code = totp(device)
    assert browser.post("/account/2fa/verify/", {"code": code}).status_code == 302
    assert_in_both_clinics(person, [tenant, other_tenant], "auth.2fa_verified", method="totp")
    assert_no_secret(wrong, code)


def test_enrolment_backup_codes_and_removal(browser, person, tenant, other_tenant, login):
    login(person, second_factor=False)
    browser.get("/account/2fa/setup/")
    device = TOTPDevice.objects.get(user=person, confirmed=False)
    code = totp(device)
    response = browser.post("/account/2fa/setup/", {"code": code})
    assert response.status_code == 200 and len(response.context["codes"]) == 10
    assert_in_both_clinics(person, [tenant, other_tenant], "auth.2fa_enrolled")
    renewed = browser.post("/account/", {"action": "backup_codes"}).context["codes"]
    assert_in_both_clinics(person, [tenant, other_tenant], "auth.2fa_backup_codes_renewed")
    assert browser.post("/account/", {"action": "disable_2fa", "password": PASSWORD}).status_code == 302
    assert_in_both_clinics(person, [tenant, other_tenant], "auth.2fa_removed")
    assert_no_secret(code, PASSWORD, *response.context["codes"], *renewed)


def test_password_change(browser, person, tenant, other_tenant, login):
    login(person, second_factor=False)
    new = "a brand new passphrase 77"
    refused = browser.post("/account/", {"action": "password", "old_password": WRONG_PASSWORD,
                                         "new_password1": new, "new_password2": new})
    assert refused.status_code == 400
    assert signins(tenant, "auth.password_changed") == []
    ok = browser.post("/account/", {"action": "password", "old_password": PASSWORD,
                                    "new_password1": new, "new_password2": new})
    assert ok.status_code == 302
    assert_in_both_clinics(person, [tenant, other_tenant], "auth.password_changed")
    assert_no_secret(PASSWORD, new, WRONG_PASSWORD)
