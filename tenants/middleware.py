"""Resolve the clinic of every `/t/<slug>/...` request once, before any view runs.

A request reaches a clinic's view only as one of its members (session) or with one of
its API tokens (bearer). Everyone else gets the same answers whether or not the clinic
or the object exists: anonymous browsers are sent to log in, anonymous API clients get
401, and members of other clinics (or their tokens) get 404.
"""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, JsonResponse

from tenants.models import ApiToken, Membership, Tenant
from tenants.principal import Principal

TENANT_KWARG = "tenant_slug"


def bearer_secret(request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() == "bearer" and secret.strip():
        return secret.strip()
    return None


def wants_json(request) -> bool:
    path = request.path
    return ("/api/" in path or "/dicomweb/" in path or bearer_secret(request) is not None
            or "json" in request.META.get("HTTP_ACCEPT", ""))


def json_error(status: int, message: str, **headers) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    for key, value in headers.items():
        response[key.replace("_", "-")] = value
    return response


class TenantMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.tenant = None
        request.principal = None
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if TENANT_KWARG not in view_kwargs:
            return None
        slug = view_kwargs.pop(TENANT_KWARG)
        secret = bearer_secret(request)
        if secret is not None:
            return self._authenticate_token(request, slug, secret)
        return self._authenticate_session(request, slug)

    def _authenticate_token(self, request, slug, secret):
        token = ApiToken.find(secret)
        if token is None or not token.is_active:
            return json_error(401, "Invalid or revoked API token", WWW_Authenticate='Bearer realm="cloudpacs"')
        if token.tenant.slug != slug or not token.tenant.is_active:
            raise Http404("No such clinic")
        token.touch()
        request.tenant = token.tenant
        request.principal = Principal.for_token(token)
        # Authenticated by the header alone, never by cookies: nothing to forge cross-site.
        request._dont_enforce_csrf_checks = True
        return None

    def _authenticate_session(self, request, slug):
        user = request.user
        if not user.is_authenticated:
            if wants_json(request):
                return json_error(401, "Authentication required", WWW_Authenticate='Bearer realm="cloudpacs"')
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        from tenants.twofactor import device_annotations, needs_second_factor

        # One row at most (a user is a member of a clinic once): no ordering to compile, and
        # the user is the one the session loaded already. Every request of a member asks.
        membership = next(iter(Membership.unscoped.select_related("tenant").annotate(**device_annotations())
                               .filter(user=user, tenant__slug=slug, tenant__status=Tenant.ACTIVE)[:1]), None)
        if membership is None:
            raise Http404("No such clinic")
        membership.user = user

        redirect = needs_second_factor(request, membership)
        if redirect is not None:
            return redirect
        request.tenant = membership.tenant
        request.principal = Principal.for_membership(membership)
        if request.session.get("last_tenant") != slug:  # an assignment alone rewrites the session
            request.session["last_tenant"] = slug
        return None
