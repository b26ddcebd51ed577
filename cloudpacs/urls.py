from csp.constants import NONCE, SELF
from csp.decorators import csp_update
from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django_otp.admin import OTPAdminSite
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from archive.views.dashboard import dashboard
from cloudpacs import health
from tenants import urls_clinic

if settings.ADMIN_REQUIRE_2FA:
    # The admin login then asks for a TOTP code; operators enrol at /account/2fa/setup/.
    admin.site.__class__ = OTPAdminSite

# What Redoc needs beyond the site's policy, on its page only: the <style> elements it writes
# (styled-components, allowed by this page's nonce, which templates/drf_spectacular/redoc.html
# hands to Redoc), the two it writes while its bundle loads, before it knows the nonce (by hash:
# an empty one and perfect-scrollbar's; a newer Redoc may change them, tests/e2e/test_csp_pages.py
# would say), its icons (data: URIs), and its search index in a worker from a blob: URL.
REDOC_CSP = {
    "style-src": [NONCE, "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",
                  "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='"],
    "img-src": ["data:"],
    "worker-src": [SELF, "blob:"],
}

clinic_patterns = [
    # The clinic's landing page shows its archive, so it is the archive's view, in the
    # namespace of the clinic's own pages (tenants cannot import the archive).
    path("", include(([path("", dashboard, name="dashboard"), *urls_clinic.urlpatterns], urls_clinic.app_name))),
    path("", include("archive.urls")),
    path("billing/", include("billing.urls")),
]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("", include("billing.webhook_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", csp_update(REDOC_CSP)(SpectacularRedocView.as_view(url_name="api-schema")), name="api-docs"),
    path("t/<slug:tenant_slug>/", include(clinic_patterns)),
    # Share links for referrers and patients, who have no account (archive/sharing/).
    path("", include("archive.sharing.public_urls")),
    path("", include("tenants.urls")),
]
