"""DRF authentication for clinic APIs: trust what TenantMiddleware resolved."""

from rest_framework import authentication, permissions


class TokenUser:
    """Stands in for request.user when an API token makes the request."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False

    def __init__(self, token):
        self.token = token
        self.pk = None

    def __str__(self) -> str:
        return f"token {self.token.name}"


class TenantRequestAuthentication(authentication.SessionAuthentication):
    def authenticate(self, request):
        principal = getattr(request._request, "principal", None)
        if principal is None:
            return None
        if principal.kind == "token":
            return (TokenUser(principal.token), principal)
        # Session-authenticated members: DRF's CSRF check still applies.
        self.enforce_csrf(request)
        return (principal.user, principal)

    def authenticate_header(self, request):
        return 'Bearer realm="cloudpacs"'


class HasTenantPerm(permissions.BasePermission):
    """Use as `permission_classes = [HasTenantPerm.of("archive.view")]`."""

    perm = ""

    @classmethod
    def of(cls, perm: str):
        return type(f"HasTenantPerm_{perm.replace('.', '_')}", (cls,), {"perm": perm})

    def has_permission(self, request, view):
        principal = getattr(request._request, "principal", None)
        return principal is not None and principal.can(self.perm)
