"""Reads of patient data (PHI) are audited here, and only here.

A view that answers with PHI (DICOMweb, the study page, the worklist, the clinic API, the
audit log, ...) carries `@audits_phi_read` and calls `phi_read(request, ...)` once it
knows what it is about to send, before the first byte goes out: one event per request
(never per frame or instance of a response) saying who read what. The per-image doors a
viewer calls hundreds of times per study (frames, bulk data, renderings) pass `repeats`:
the same reader reading the same study through the same door within
PHI_READ_REPEAT_SECONDS is covered by the event of the first read, which was committed
before that first answer and says how long it covers.

The decorator refuses a success answer for which no event was written (a 500, and the
PHI is not sent), so a branch that forgets the call fails closed instead of reading
silently; tests/test_phi_read_audit_walker.py requests every URL that returns PHI and
checks its event, so a new door cannot forget the decorator either.

It lives in tenants, beside the audit log, because the log is itself a PHI door and
tenants never imports archive.
"""

import threading
import time
from collections import OrderedDict
from functools import wraps

from django.conf import settings
from django.db import transaction
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


# Reads covered by a committed event, per process: key -> when that event was committed
# (time.monotonic). Bounded: the oldest are forgotten first, and a forgotten read is only
# written again.
_covered: OrderedDict[tuple, float] = OrderedDict()
_covered_lock = threading.Lock()
COVERED_MAX = 10_000
_now = time.monotonic


def phi_read(request, *, action: str, obj_type: str, obj_id="", detail: dict,
             repeats: bool = False) -> AuditEvent | None:
    """Record that this request reads PHI. `detail` names no patient that was read (counts,
    UIDs); a search records the criteria its reader typed, as IHE ATNA's query events do
    (the README's "PHI at rest" says where that leaves PHI).
    With `repeats` (a per-image door), None when an event of this reader, door and object
    written within PHI_READ_REPEAT_SECONDS covers this read."""
    http = _http_request(request)
    if not hasattr(http, _EVENTS):
        raise PhiReadNotAudited(f"phi_read({action!r}) outside an @audits_phi_read view")
    actor = http.principal.actor(http)
    window = settings.PHI_READ_REPEAT_SECONDS if repeats else 0
    if window:
        # The reader as its events record it (the user agent cut as stored): bounded keys.
        reader = (actor.type, str(actor.id or ""), actor.ip or "", (actor.user_agent or "")[:300])
        key = (http.tenant.pk, reader, action, obj_type, str(obj_id), detail.get("what"))
        if _is_covered(key, window):
            setattr(http, _EVENTS, getattr(http, _EVENTS) + 1)
            return None
        detail = {**detail, "covers_repeats_for_s": window}
    event = audit_record(tenant=http.tenant, actor=actor, action=action,
                         obj_type=obj_type, obj_id=str(obj_id), detail=detail)
    if window:  # covered only once the event is committed
        transaction.on_commit(lambda: _cover(key))
    setattr(http, _EVENTS, getattr(http, _EVENTS) + 1)
    return event


def _is_covered(key: tuple, window: float) -> bool:
    with _covered_lock:
        at = _covered.get(key)
        return at is not None and _now() - at < window


def _cover(key: tuple) -> None:
    with _covered_lock:
        _covered[key] = _now()
        _covered.move_to_end(key)
        while len(_covered) > COVERED_MAX:
            _covered.popitem(last=False)


def forget_covered_reads() -> None:
    """Every next read writes its event again (tests; a reader whose access changed)."""
    with _covered_lock:
        _covered.clear()


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
