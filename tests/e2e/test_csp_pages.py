"""Every page a clinic user can reach, in Chromium, under the Content-Security-Policy: none
reports a CSP violation, none asks another origin for anything (no CDN, no web fonts), and
what used to be inline script (the phone menu, the confirm-before-removing forms, the API
docs) still works."""

import time
from urllib.parse import urlparse

import pyotp
import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenants import roles
from tenants.audit import Actor
from tenants.models import ApiToken
from tenants.services import invitation_create
from tests.conftest import PASSWORD
from tests.e2e.conftest import nav_to, snap
from tests.e2e.test_pages_fit import _clinic_with_data

pytestmark = pytest.mark.browser

# Chromium logs each violation to the console itself; the event also reaches this listener,
# which reports the directive and what was blocked (also for violations in report-only mode).
REPORT_VIOLATIONS = """document.addEventListener('securitypolicyviolation', e =>
    console.error('securitypolicyviolation: ' + e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline')
                  + ' at ' + e.sourceFile + ':' + e.lineNumber));"""

# Redoc's sidebar always shows Redocly's logo from their CDN (no option turns it off): the
# policy blocking that request is the point, and Redoc then hides the broken image.
EXPECTED_BLOCKS = ("https://cdn.redoc.ly/redoc/logo-mini.svg",)


class Watch:
    """What a page did that the policy forbids, and the policy each HTML page came with."""

    def __init__(self, page, origin: str):
        self.origin = origin
        self.violations: list[str] = []
        self.foreign: list[str] = []
        self.documents: dict[str, str | None] = {}
        page.add_init_script(REPORT_VIOLATIONS)
        page.on("console", self._console)
        page.on("request", self._request)
        page.on("response", self._response)
        page.on("requestfailed", self._failed)

    def _console(self, message):
        text = message.text
        if any(blocked in text for blocked in EXPECTED_BLOCKS):
            return
        if "Content Security Policy" in text or "securitypolicyviolation" in text:
            self.violations.append(f"{message.page.url if message.page else ''}: {text}")

    def _request(self, request):
        parts = urlparse(request.url)
        if parts.scheme in ("data", "blob"):
            return
        if f"{parts.scheme}://{parts.netloc}" != self.origin:
            self.foreign.append(request.url)

    def _failed(self, request):
        # Chromium reports a request the policy stopped too; it never left the browser.
        if request.failure in ("csp", "net::ERR_BLOCKED_BY_CSP") and request.url in EXPECTED_BLOCKS:
            self.foreign.remove(request.url)

    def _response(self, response):
        if response.request.resource_type == "document":
            self.documents[urlparse(response.url).path] = response.headers.get("content-security-policy")


def _visit(page, watch, url: str, status: int = 200):
    response = page.goto(watch.origin + url)
    assert response.status == status, (url, response.status)
    page.wait_for_load_state("networkidle")


def test_no_page_breaks_the_policy_or_calls_another_origin(live_server, tenant, owner, make_member,
                                                          make_token, phone, e2e_dirs):
    page = phone
    watch = Watch(page, live_server.url)
    old, recent = _clinic_with_data(tenant, owner, make_member, make_token)
    _, invite = invitation_create(tenant=tenant, email="new.radiologist@example.test", role=roles.RADIOLOGIST,
                                  by_role=roles.OWNER, invited_by=owner, actor=Actor.system("test"))
    base = f"/t/{tenant.slug}"

    # Anonymous: an invitation link, the login page, a page that does not exist (and the
    # platform operators' admin login).
    _visit(page, watch, f"/invite/{invite}/")
    _visit(page, watch, "/admin/login/")
    _visit(page, watch, "/no-such-page/", status=404)
    _visit(page, watch, base + "/")
    assert "/login/" in page.url

    # The owner logs in and enrols an authenticator app (2FA set-up and backup-code pages).
    page.fill("input[name=email]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/account/2fa/setup/**")
    assert page.locator(".qr svg").is_visible()
    secret = page.inner_text("code.secret").replace(" ", "")
    page.fill("input[name=code]", pyotp.TOTP(secret).now())
    page.click("main button[type=submit]")
    page.wait_for_load_state()
    assert page.locator("ul.codes code").count() == 10
    page.click("text=Continue")
    page.wait_for_url(f"{live_server.url}{base}/")

    pages = ["/", "/account/", f"{base}/", f"{base}/studies/", f"{base}/studies/{old.pk}/",
             f"{base}/studies/{recent.pk}/", f"{base}/upload/", f"{base}/members/", f"{base}/settings/",
             f"{base}/settings/tokens/", f"{base}/settings/dicom/", f"{base}/audit/",
             f"{base}/settings/retention/", f"{base}/retention/", f"{base}/deletions/",
             f"{base}/studies/{recent.pk}/delete/"]
    for url in pages:
        _visit(page, watch, url)
        snap(page, "csp" + url.replace("/", "-"))

    # The worklist's folded filters and the phone menu open (script from our own files).
    _visit(page, watch, f"{base}/studies/")
    page.click("button.nav-toggle")
    assert page.locator("#mainnav").is_visible()
    assert page.get_attribute("button.nav-toggle", "aria-expanded") == "true"
    page.click("button.nav-toggle")
    assert not page.locator("#mainnav").is_visible()

    # Revoking a token asks first: cancelled, it stays; confirmed, it goes.
    nav_to(page, "API tokens")
    token = ApiToken.objects.for_tenant(tenant).get()
    asked: list[str] = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.click("main form[action$='/revoke/'] button[type=submit]")
    assert asked and "Revoke CT scanner room 2" in asked[0]
    assert ApiToken.objects.for_tenant(tenant).filter(pk=token.pk, revoked_at__isnull=True).exists()
    page.once("dialog", lambda d: d.accept())
    with page.expect_navigation():
        page.click("main form[action$='/revoke/'] button[type=submit]")
    assert not ApiToken.objects.for_tenant(tenant).filter(pk=token.pk, revoked_at__isnull=True).exists()

    # The API docs render from our own origin (Redoc and its fonts from no CDN).
    _visit(page, watch, "/api/docs/")
    page.wait_for_selector("h1:has-text('CloudPACS clinic API')")
    snap(page, "api-docs-phone")

    # Logged out and back in: the 2FA code page.
    _visit(page, watch, f"{base}/")
    page.click("button.nav-toggle")
    with page.expect_navigation():
        page.click("#mainnav button:has-text('Log out')")
    _visit(page, watch, base + "/")
    page.fill("input[name=email]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/account/2fa/verify/**")
    device = TOTPDevice.objects.get(user=owner)
    # A code is good once: use the next time step's if the enrolment just used this one's.
    step = max(int(time.time()) // 30, device.last_t + 1)
    page.fill("input[name=code]", pyotp.TOTP(secret).at(step * 30))
    page.click("main button[type=submit]")
    page.wait_for_url(f"{live_server.url}{base}/")

    assert watch.violations == [], "\n".join(watch.violations)
    assert watch.foreign == []
    visited = {"/login/", "/admin/login/", "/account/2fa/setup/", "/account/2fa/verify/", "/api/docs/", f"/invite/{invite}/",
               *pages}
    assert visited - set(watch.documents) == set()
    unprotected = [path for path, policy in watch.documents.items()
                   if not policy or "default-src 'self'" not in policy or "'unsafe-inline'" in policy]
    assert unprotected == []
