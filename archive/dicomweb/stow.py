"""STOW-RS (PS3.18 10.5): store instances sent as multipart/related application/dicom.

The body is streamed part by part into spool files (never held in memory). Each part's
header is parsed in a parse process while the next part arrives (archive.ingest.parse_ahead).
Instances are indexed only after the closing boundary has been read: a truncated or
malformed body is answered 400 and nothing of it is stored, since the client will send it
again anyway.
"""

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_POST

from archive.dicomweb.multipart import (
    MultipartError,
    MultipartReader,
    UnsupportedMediaType,
    parse_content_type,
    related_boundary,
)
from archive.ingest import errors
from archive.ingest.errors import InvalidInstance
from archive.ingest.parse_ahead import ParseAhead
from archive.ingest.service import Closing, IngestContext, IngestResult, Outcome, instances_ingest
from archive.ingest.spool import SpooledFile, TooLarge
from archive.storage.durability import StorageUnavailable
from archive.views.admission import uploads_admitted
from tenants.audit import audit_record
from tenants.decorators import require_perm

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
DUPLICATE_SOP_INSTANCE = errors.DUPLICATE_SOP_INSTANCE  # why a failure: see archive.ingest.errors
PRIVATE_CREATOR = "CLOUDPACS"  # private block carrying a readable failure detail


@dataclass
class PartFailure:
    code: int
    reason: str
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    transient: bool = False  # nothing wrong with the part: sending it again later will do


# Why a part was not stored when no storage region took it (INGEST_DURABILITY=primary).
STORAGE_UNAVAILABLE = "no storage region is reachable now: nothing of this part was stored; send it again later"
RETRY_AFTER_SECONDS = 30


@dataclass
class StowOutcome:
    status: int
    body: dict
    counts: dict = field(default_factory=dict)
    study_uids: list[str] = field(default_factory=list)


def request_stream(request):
    """The request body as a stream. Under ASGI (how CloudPACS is served) the server has
    received the whole body, chunked or not, into a spool file before the view runs.
    Under WSGI, Django wraps wsgi.input in a LimitedStream of CONTENT_LENGTH bytes (0 if
    absent); reading it directly never applies DATA_UPLOAD_MAX_MEMORY_SIZE, which only
    guards request.body/POST. A chunked body has no length: servers that de-chunk say so
    with wsgi.input_terminated, and then wsgi.input is read to its end. Returns None if
    the body cannot be read safely."""
    if "wsgi.input" not in request.META or request.META.get("CONTENT_LENGTH"):
        return request
    if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        return request.META["wsgi.input"] if request.META.get("wsgi.input_terminated") else None
    return request


def _spool_parts(reader: MultipartReader, root_type: str, spooled: list[SpooledFile | PartFailure],
                 on_spooled: Callable[[SpooledFile], None]) -> None:
    """Write every part to its own spool file, appended to `spooled` (the caller removes
    them), calling `on_spooled` with each complete one. A part that cannot be one of our
    instances becomes a PartFailure and its bytes are read and dropped."""
    for part in reader:
        part_type = parse_content_type(part.content_type or root_type or DICOM)[0]
        if part_type != DICOM:
            part.drain()
            spooled.append(PartFailure(errors.CANNOT_UNDERSTAND,
                                       f"part {part.index + 1} has Content-Type {part_type}, not {DICOM}"))
            continue
        spool = SpooledFile(hashed=False)  # hashed in the parse process (parse_ahead)
        spooled.append(spool)
        try:
            for chunk in _with_part10_preamble(part.chunks()):
                spool.write(chunk)
            spool.finish()
        except TooLarge as exc:
            spool.close()
            part.drain()
            spooled[-1] = PartFailure(errors.OUT_OF_RESOURCES, f"part {part.index + 1} is {exc}")
            continue
        on_spooled(spool)


def _with_part10_preamble(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Pass a part through, adding the 128-byte preamble and "DICM" prefix when a sender
    wrote the File Meta group without them (pydicom's dcmwrite does so for datasets built
    in memory, hence dicomweb-client too). PS3.18 parts are PS3.10 files; the addition is
    lossless and always the same, so re-sends still deduplicate by checksum."""
    head = b""
    for chunk in chunks:
        if head is None:
            yield chunk
            continue
        head += chunk
        if len(head) < 132:
            continue
        if head[128:132] != b"DICM" and head[:2] == b"\x02\x00":
            yield bytes(128) + b"DICM"
        yield head
        head = None
    if head:
        if head[:2] == b"\x02\x00":
            yield bytes(128) + b"DICM"
        yield head


# Parts committed together: bounds the memory of parsed headers held for one transaction.
INGEST_BATCH = 64


def stow_store(*, tenant, stream, content_type: str, actor, study_uid: str | None,
               base_url: str) -> StowOutcome:
    """Store the instances of one STOW-RS request; the PS3.18 status and response body.
    The request is one audit event, refused ones included: written with the last batch's
    instances when that commits new ones (no transaction of its own), else after."""
    audit = Closing(events=lambda results: [_audit_event(_outcome(results, study_uid, base_url), study_uid)])
    outcome = _stow(tenant, stream, content_type, actor, study_uid, base_url, audit)
    if not audit.written:
        audit_record(tenant=tenant, actor=actor, **_audit_event(outcome, study_uid))
    return outcome


def _audit_event(outcome: StowOutcome, study_uid: str | None) -> dict:
    """UIDs and counts only, never patient attributes."""
    return {"action": "dicomweb.stow", "obj_type": "study",
            "obj_id": study_uid or (outcome.study_uids[0] if len(outcome.study_uids) == 1 else ""),
            "detail": {"status": outcome.status, **outcome.counts, "studies": outcome.study_uids[:100]}}


def _stow(tenant, stream, content_type: str, actor, study_uid: str | None, base_url: str,
          audit: Closing) -> StowOutcome:
    try:
        boundary = related_boundary(content_type)
        root_type = parse_content_type(content_type)[1].get("type", "")
    except UnsupportedMediaType as exc:
        return StowOutcome(415, _error_body(str(exc)))
    except MultipartError as exc:
        return StowOutcome(400, _error_body(f"bad Content-Type: {exc}; nothing was stored"))
    parsing = ParseAhead()
    items: list[SpooledFile | PartFailure] = []
    try:
        try:
            _spool_parts(MultipartReader(stream, boundary), root_type, items,
                         lambda spool: parsing.submit(spool.path))
        except UnsupportedMediaType as exc:
            return StowOutcome(415, _error_body(str(exc)))
        except MultipartError as exc:
            return StowOutcome(400, _error_body(f"malformed multipart body: {exc}; nothing was stored"))
        if not items:
            return StowOutcome(400, _error_body("the multipart body contains no parts"))
        results = _ingest(tenant, items, parsing, actor, study_uid, audit)
    finally:
        parsing.close()  # before any spool file is removed
        for item in items:
            if isinstance(item, SpooledFile):
                item.close()
    return _outcome(results, study_uid, base_url)


def _ingest(tenant, items: list, parsing: ParseAhead, actor, study_uid: str | None, audit: Closing) -> list:
    """Ingest the spooled parts batch by batch; `audit`'s events, made from the whole
    request's results, go in with the last batch (see Closing)."""
    results: list[IngestResult | PartFailure | None] = [
        item if isinstance(item, PartFailure) else None for item in items]
    context = IngestContext()  # the parts of one body mostly share a study and series
    todo = [n for n, item in enumerate(items) if isinstance(item, SpooledFile)]
    # One flush to disk and one transaction per slice of parts, not per part.
    for start in range(0, len(todo), INGEST_BATCH):
        positions = todo[start:start + INGEST_BATCH]
        batch = [items[n] for n in positions]
        prepared = parsing.results([spool.path for spool in batch])
        for spool, ready in zip(batch, prepared, strict=True):
            spool.digest_set(ready.sha256)
        for n in positions:
            items[n] = None  # consumed by instances_ingest, whatever happens
        last = start + INGEST_BATCH >= len(todo)

        def request_events(batch_results: list, positions=positions) -> list[dict]:
            complete = list(results)
            for n, result in zip(positions, batch_results, strict=True):
                complete[n] = result
            return audit.events(complete)

        closing = Closing(events=request_events) if last else None
        try:
            stored = instances_ingest(tenant=tenant, spooled=batch, actor=actor,
                                      parsed_ahead=[ready.outcome for ready in prepared],
                                      expected_study_uid=study_uid, context=context, closing=closing)
        except StorageUnavailable:
            stored = [_unavailable(ready.outcome) for ready in prepared]
        audit.written = bool(closing and closing.written)
        for n, result in zip(positions, stored, strict=True):
            results[n] = result
    return results


def _unavailable(parsed) -> PartFailure:
    if isinstance(parsed, InvalidInstance):  # refused for what it is, storage or not
        return PartFailure(parsed.code, parsed.reason)
    return PartFailure(errors.OUT_OF_RESOURCES, STORAGE_UNAVAILABLE, parsed.sop_class_uid, parsed.sop_uid,
                       transient=True)


def _outcome(results, study_uid: str | None, base_url: str) -> StowOutcome:
    referenced, failed = [], []
    counts = {"stored": 0, "already_present": 0, "failed": 0}
    studies: list[str] = []
    for result in results:
        if isinstance(result, IngestResult) and result.study_instance_uid not in studies and result.ok:
            studies.append(result.study_instance_uid)
        if isinstance(result, IngestResult) and result.ok:
            counts[result.outcome.value] += 1
            referenced.append(_referenced_item(result, base_url))
            continue
        counts["failed"] += 1
        failed.append(_failed_item(_as_failure(result)))
    target = study_uid or (studies[0] if len(studies) == 1 else None)
    body = {RETRIEVE_URL: _element("UR", f"{base_url}/studies/{target}" if target else "")}
    if referenced:
        body[REFERENCED_SOP_SEQUENCE] = {"vr": "SQ", "Value": referenced}
    if failed:
        body[FAILED_SOP_SEQUENCE] = {"vr": "SQ", "Value": failed}
    # PS3.18 Table 10.5.3-1: 200 all stored; 202 some stored; 409 none stored although the
    # request was well formed (400 is for bad syntax, which is answered before this point).
    status = 200 if not failed else (202 if referenced else 409)
    if status == 409 and all(isinstance(r, PartFailure) and r.transient for r in results):
        status = 503  # nothing wrong with the request: the storage is down (Retry-After)
    return StowOutcome(status, body, counts, studies)


# The response is DICOM JSON (PS3.18 F.2) written directly: building pydicom Datasets
# and converting them cost more than a tenth of the ingest time of a 30-instance body.
RETRIEVE_URL = "00081190"
REFERENCED_SOP_SEQUENCE = "00081199"
FAILED_SOP_SEQUENCE = "00081198"


def _element(vr: str, value) -> dict:
    """One DICOM JSON attribute; an empty value has no "Value" (PS3.18 F.2.5)."""
    return {"vr": vr, "Value": [value]} if value not in ("", None) else {"vr": vr}


def _as_failure(result: IngestResult | PartFailure) -> PartFailure:
    if isinstance(result, PartFailure):
        return result
    if result.outcome == Outcome.CONFLICT:
        return PartFailure(DUPLICATE_SOP_INSTANCE, result.reason, result.sop_class_uid,
                           result.sop_instance_uid)
    return PartFailure(result.failure_code or errors.PROCESSING_FAILURE, result.reason,
                       result.sop_class_uid, result.sop_instance_uid)


def _referenced_item(result: IngestResult, base_url: str) -> dict:
    series_uid = result.instance.series.series_instance_uid if result.instance else ""
    return {
        "00081150": _element("UI", result.sop_class_uid),  # ReferencedSOPClassUID
        "00081155": _element("UI", result.sop_instance_uid),  # ReferencedSOPInstanceUID
        RETRIEVE_URL: _element("UR", f"{base_url}/studies/{result.study_instance_uid}/series/{series_uid}"
                                     f"/instances/{result.sop_instance_uid}"),
    }


def _failed_item(failure: PartFailure) -> dict:
    return {
        "00081150": _element("UI", failure.sop_class_uid),  # ReferencedSOPClassUID
        "00081155": _element("UI", failure.sop_instance_uid),  # ReferencedSOPInstanceUID
        "00081197": _element("US", failure.code),  # FailureReason
        # A private block carrying a readable detail: creator (0009,0010), text (0009,1001).
        "00090010": _element("LO", PRIVATE_CREATOR),
        "00091001": _element("LT", failure.reason[:1000]),
    }


def _error_body(message: str) -> dict:
    return {"error": message}


@require_POST
@require_perm("archive.upload")
@uploads_admitted
def store(request, study_uid: str | None = None):
    stream = request_stream(request)
    if stream is None:
        return JsonResponse({"error": "a chunked request body is not supported by this server; "
                                      "send Content-Length"}, status=411)
    base_url = request.build_absolute_uri(f"/t/{request.tenant.slug}/dicomweb")
    outcome = stow_store(tenant=request.tenant, stream=stream,
                         content_type=request.META.get("CONTENT_TYPE", ""),
                         actor=request.principal.actor(request), study_uid=study_uid, base_url=base_url)
    if outcome.status in (400, 415):
        return JsonResponse(outcome.body, status=outcome.status)
    response = HttpResponse(json.dumps(outcome.body), status=outcome.status, content_type=DICOM_JSON)
    if outcome.status == 503:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
