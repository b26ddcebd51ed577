"""Reads of patient data (PHI) are audited here, and only here.

A view that answers with PHI (DICOMweb, the study page, the worklist, the clinic API, the
audit log, ...) carries `@audits_phi_read` and calls `phi_read(request, ...)` once it
knows what it is about to send, before the first byte goes out: one event per request
(never per frame or instance) saying who read what.

The decorator refuses a success answer for which no event was written (a 500, and the
PHI is not sent), so a branch that forgets the call fails closed instead of reading
silently; tests/test_phi_read_audit_walker.py requests every URL that returns PHI and
checks its event, so a new door cannot forget the decorator either.

It lives in tenants, beside the audit log, because the log is itself a PHI door and
tenants never imports archive.
"""

from functools import wraps

from django.http import HttpRequest

from tenants.audit import AuditEvent, audit_record

# On the HttpRequest: how many PHI-read events this request has written. Present only
# inside an @audits_phi_read view (the outermost one sets it; a view it calls shares it).
_EVENTS = "_phi_read_events"


class PhiReadNotAudited(RuntimeError):
    """A PHI door answered with success without writing its audit event."""


def _http_request(request) -> HttpRequest:
    # A DRF Request wraps the HttpRequest that carries the clinic and principal.
    return getattr(request, "_request", request)


def phi_read(request, *, action: str, obj_type: str, obj_id="", detail: dict) -> AuditEvent:
    """Record that this request reads PHI. `detail` must name no patient (counts, UIDs)."""
    http = _http_request(request)
    if not hasattr(http, _EVENTS):
        raise PhiReadNotAudited(f"phi_read({action!r}) outside an @audits_phi_read view")
    event = audit_record(tenant=http.tenant, actor=http.principal.actor(http), action=action,
                         obj_type=obj_type, obj_id=str(obj_id), detail=detail)
    setattr(http, _EVENTS, getattr(http, _EVENTS) + 1)
    return event


def audits_phi_read(view):
    """Mark a view function, or a DRF view method, as a door that returns PHI."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        # A view function gets the request first; a method gets (self, request).
        request = args[0] if isinstance(_http_request(args[0]), HttpRequest) else args[1]
        http = _http_request(request)
        outermost = not hasattr(http, _EVENTS)
        if outermost:
            setattr(http, _EVENTS, 0)
        response = view(*args, **kwargs)
        if outermost and 200 <= response.status_code < 300 and not getattr(http, _EVENTS):
            raise PhiReadNotAudited(f"{view.__qualname__} answered {response.status_code} "
                                    "without a phi_read() audit event")
        return response

    return wrapper
