"""View guards for clinic URLs. The middleware has already resolved the clinic and
the principal; these check what the principal may do there."""

from functools import wraps

from django.core.exceptions import PermissionDenied
from django.http import Http404

from tenants.audit import audit_record
from tenants.middleware import json_error, wants_json


def require_perm(*perms: str):
    """The principal must hold one of `perms` (usually just one)."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            principal = getattr(request, "principal", None)
            if getattr(request, "tenant", None) is None or principal is None:
                # A clinic view mounted outside /t/<slug>/ must never run unscoped.
                raise Http404("No such clinic")
            if not any(principal.can(perm) for perm in perms):
                wanted = " or ".join(perms)
                if wants_json(request):
                    return json_error(403, f"This credential lacks the permission {wanted}")
                raise PermissionDenied(f"Your role does not allow this ({wanted}).")
            return view(request, *args, **kwargs)

        wrapper.required_perms = perms
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


def require_perm_audited(request, perm: str, *, action: str, obj_type: str, obj_id, detail: dict) -> None:
    """Inside a view whose refusals the clinic must see (writing a report, correcting a
    study): without `perm`, the attempt goes into the audit log and the answer is 403."""
    if request.principal.can(perm):
        return
    audit_record(tenant=request.tenant, actor=request.principal.actor(request), action=action,
                 obj_type=obj_type, obj_id=obj_id, detail=detail)
    raise PermissionDenied(f"Your role does not allow this ({perm}).")
