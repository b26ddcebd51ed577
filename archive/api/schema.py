"""OpenAPI description of how clinic API requests authenticate.

`TenantRequestAuthentication` trusts what TenantMiddleware resolved: either a bearer API
token (`Authorization: Bearer <token>`, what scripts and integrations use) or a member's
session cookie (the browser; unsafe methods then need the CSRF token). Either one works,
so the schema lists them as alternatives.
"""

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class TenantRequestAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.api_auth.TenantRequestAuthentication"
    name = ["bearerAuth", "cookieAuth"]
    priority = 1  # above drf-spectacular's SessionAuthentication scheme (our base class)

    def get_security_requirement(self, auto_schema):
        return [{"bearerAuth": []}, {"cookieAuth": []}]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "http", "scheme": "bearer",
             "description": "A clinic API token (clinic settings -> API tokens). Scope `read` "
                            "allows these endpoints; an `upload`-only token gets 403."},
            {"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME,
             "description": "A logged-in clinic member's session (browser)."},
        ]
