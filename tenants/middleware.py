"""Resolve the clinic of every `/t/<slug>/...` request once, before any view runs.

A request reaches a clinic's view only as one of its members (session) or with one of
its API tokens (bearer). Everyone else gets the same answers whether or not the clinic
or the object exists: anonymous browsers are sent to log in, anonymous API clients get
401, and members of other clinics (or their tokens) get 404.
"""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.db.models import CharField, IntegerField
from django.http import Http404, JsonResponse

from cloudpacs.compiled_query import (
    CompiledQuery,
    Slot,
    fields_in_order,
    models_from_row,
    related_fields,
)
from tenants.models import ApiToken, Membership, Tenant
from tenants.principal import Principal
from tenants.twofactor import device_annotation_names, device_annotations, needs_second_factor

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


def _membership_query() -> CompiledQuery:
    """A user's membership of an active clinic by its slug, with the clinic and whether the
    user has a confirmed device of each kind (`needs_second_factor` reads them): one row at
    most. Every request of a member asks, so it is compiled once (cloudpacs.compiled_query)."""
    def build():
        annotations = device_annotations()
        return (Membership.unscoped.annotate(**annotations)
                .filter(user_id=Slot("user", IntegerField()), tenant__slug=Slot("slug", CharField()),
                        tenant__status=Tenant.ACTIVE)
                .values_list(*fields_in_order(Membership), *related_fields("tenant", Tenant), *annotations)[:1])

    return CompiledQuery(build)


_MEMBERSHIP = _membership_query()


def active_membership(user, slug: str) -> Membership | None:
    """`user`'s membership of the active clinic `slug`, its tenant loaded, or None."""
    rows = _MEMBERSHIP.rows(user=user.pk, slug=slug)
    if not rows:
        return None
    membership, membership.tenant, *has_devices = models_from_row(
        rows[0], (Membership, fields_in_order(Membership)), (Tenant, fields_in_order(Tenant)))
    membership.user = user
    for name, value in zip(device_annotation_names(), has_devices, strict=True):
        setattr(membership, name, value)
    return membership


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
        membership = active_membership(user, slug)
        if membership is None:
            raise Http404("No such clinic")

        redirect = needs_second_factor(request, membership)
        if redirect is not None:
            return redirect
        request.tenant = membership.tenant
        request.principal = Principal.for_membership(membership)
        if request.session.get("last_tenant") != slug:  # an assignment alone rewrites the session
            request.session["last_tenant"] = slug
        return None
