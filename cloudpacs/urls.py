from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django_otp.admin import OTPAdminSite
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from cloudpacs import health

if settings.ADMIN_REQUIRE_2FA:
    # The admin login then asks for a TOTP code; operators enrol at /account/2fa/setup/.
    admin.site.__class__ = OTPAdminSite

clinic_patterns = [
    path("", include("tenants.urls_clinic")),
    path("", include("archive.urls")),
    path("billing/", include("billing.urls")),
]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-docs"),
    path("t/<slug:tenant_slug>/", include(clinic_patterns)),
    path("", include("tenants.urls")),
]
