"""View guards for clinic URLs. The middleware has already resolved the clinic and
the principal; these check what the principal may do there."""

from functools import wraps

from django.core.exceptions import PermissionDenied
from django.http import Http404

from tenants.middleware import json_error, wants_json


def require_perm(perm: str):
    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            principal = getattr(request, "principal", None)
            if getattr(request, "tenant", None) is None or principal is None:
                # A clinic view mounted outside /t/<slug>/ must never run unscoped.
                raise Http404("No such clinic")
            if not principal.can(perm):
                if wants_json(request):
                    return json_error(403, f"This credential lacks the permission {perm}")
                raise PermissionDenied(f"Your role does not allow this ({perm}).")
            return view(request, *args, **kwargs)

        wrapper.required_perm = perm
        return wrapper

    return decorator


def require_member(view):
    """For pages any member may see, but no API token."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        principal = getattr(request, "principal", None)
        if getattr(request, "tenant", None) is None or principal is None:
            raise Http404("No such clinic")
        if principal.kind != "user":
            return json_error(403, "This page is for clinic members, not API tokens")
        return view(request, *args, **kwargs)

    return wrapper
