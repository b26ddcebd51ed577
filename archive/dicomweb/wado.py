"""WADO-RS (PS3.18 10.4): instances, metadata, frames and bulk data.

Instances stream as multipart/related parts read from storage in 1 MiB chunks; only an
instance that must change transfer syntax is held in memory, one at a time. Each request
writes one audit event, before the first byte goes out.
"""

import json
import logging
import re
from collections.abc import Iterator

import pydicom
from django.http import HttpResponse
from django.views.decorators.gzip import gzip_page

from archive.dicomweb import frames as fr
from archive.dicomweb.common import DICOM_JSON, dicomweb_root, error
from archive.dicomweb.compression import wire_compressed
from archive.dicomweb.json import metadata_text
from archive.dicomweb.negotiate import (
    ANY,
    ENCODABLE,
    NotAcceptable,
    choose_dicom_syntax,
    choose_frame_media,
)
from archive.dicomweb.streaming import (
    multipart_length,
    multipart_response,
    new_boundary,
)
from archive.dicomweb.transcode import TranscodeError, transcode
from archive.errors import NotFound
from archive.selectors import studies
from archive.storage.reader import InstanceUnavailable, StoredBytes, open_instance
from tenants.decorators import require_perm
from tenants.phi_audit import audits_phi_read, phi_read

log = logging.getLogger(__name__)
OCTET = "application/octet-stream"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


def _instance_parts(instances, target: str, first: bytes | None) -> Iterator[tuple[str, Iterator[bytes]]]:
    keys: dict = {}  # the clinic's data keys, looked up once for the whole response
    for i, inst in enumerate(instances):
        stored = inst.transfer_syntax_uid
        ts = stored if target in (ANY, stored) else target
        if i == 0 and first is not None:
            yield f"application/dicom; transfer-syntax={ts}", iter([first])
            continue
        if ts != stored:
            try:
                with open_instance(inst, keys=keys) as fh:
                    data = transcode(fh, ts)
                yield f"application/dicom; transfer-syntax={ts}", iter([data])
                continue
            except TranscodeError:
                # The status line is sent already: send this one as stored, its part
                # header saying so, rather than dropping it.
                log.warning("instance %s sent as stored: cannot transcode to %s", inst.pk, ts,
                            exc_info=True)
        yield f"application/dicom; transfer-syntax={stored}", StoredBytes(inst, keys=keys)


def _as_stored_length(instances, target: str, boundary: str) -> int | None:
    """The body's length when every instance goes out as stored, else None (a transcoded
    part's size is known only once it is made)."""
    if any(target not in (ANY, inst.transfer_syntax_uid) for inst in instances):
        return None
    return multipart_length(((f"application/dicom; transfer-syntax={inst.transfer_syntax_uid}",
                              inst.size_bytes) for inst in instances), boundary)


def _retrieve(request, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None):
    try:
        target = choose_dicom_syntax(request.headers.get("Accept"))
        instances = studies.instances_for_retrieve(tenant=request.tenant, study_uid=study_uid,
                                                     series_uid=series_uid, sop_uid=sop_uid)
    except NotAcceptable as exc:
        return error(406, str(exc))
    except NotFound as exc:
        return error(404, str(exc))
    first = None
    if target in ENCODABLE and target != instances[0].transfer_syntax_uid:
        # Try the first instance before answering, so that an impossible encoding is a 406
        # and not a broken stream.
        try:
            with open_instance(instances[0]) as fh:
                first = transcode(fh, target)
        except TranscodeError as exc:
            return error(406, str(exc))
    level = "instance" if sop_uid else "series" if series_uid else "study"
    phi_read(request, action="dicomweb.retrieve", obj_type="study", obj_id=instances[0].study_id,
             detail={"what": "instances", "level": level, "instances": len(instances)})
    boundary = new_boundary()
    deid = getattr(request, "deidentifier", None)
    if deid is not None:  # a de-identified share: each instance rewritten, as stored
        return multipart_response(_deidentified_parts(instances, deid), "application/dicom", boundary=boundary)
    return multipart_response(_instance_parts(instances, target, first), "application/dicom",
                              transfer_syntax=None if target == ANY else target, boundary=boundary,
                              length=_as_stored_length(instances, target, boundary))


def _deidentified_parts(instances, deid) -> Iterator[tuple[str, Iterator[bytes]]]:
    keys: dict = {}
    for inst in instances:
        yield f"application/dicom; transfer-syntax={inst.transfer_syntax_uid}", iter([deid.part10(inst, keys)])


@require_perm("archive.download")
@audits_phi_read
def retrieve_study(request, study_uid: str):
    return _retrieve(request, study_uid)


@require_perm("archive.download")
@audits_phi_read
def retrieve_series(request, study_uid: str, series_uid: str):
    return _retrieve(request, study_uid, series_uid)


@require_perm("archive.download")
@audits_phi_read
def retrieve_instance(request, study_uid: str, series_uid: str, sop_uid: str):
    return _retrieve(request, study_uid, series_uid, sop_uid)


# JSON headers compress 20-40 times: a viewer's study metadata goes from megabytes to tens
# of kilobytes (gzip when the client accepts it; no secret or reflected input is in it).
@gzip_page
@require_perm("archive.view")
@audits_phi_read
def metadata(request, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None):
    try:
        headers = studies.instance_headers(tenant=request.tenant, study_uid=study_uid,
                                           series_uid=series_uid, sop_uid=sop_uid)
    except NotFound as exc:
        return error(404, str(exc))
    root = f"{dicomweb_root(request)}/studies/{study_uid}"
    deid = getattr(request, "deidentifier", None)  # a de-identified share (archive/sharing/deidentify.py)
    body = []
    for header in headers:
        base = f"{root}/series/{header.series_instance_uid}/instances/{header.sop_instance_uid}/bulkdata/"
        text = metadata_text(header.json_text, base)
        body.append(text if deid is None else
                    json.dumps(deid.json(json.loads(text)), ensure_ascii=False, separators=(",", ":")))
    level = "instance" if sop_uid else "series" if series_uid else "study"
    phi_read(request, action="dicomweb.retrieve", obj_type="study", obj_id=headers[0].study_id,
             detail={"what": "metadata", "level": level, "instances": len(headers)})
    return HttpResponse(f"[{','.join(body)}]", content_type=f"{DICOM_JSON}; charset=utf-8")


def one_instance(request, study_uid: str, series_uid: str, sop_uid: str):
    return studies.instances_for_retrieve(tenant=request.tenant, study_uid=study_uid,
                                            series_uid=series_uid, sop_uid=sop_uid)[0]


def _frame_parts(fh, ds, numbers: list[int], media: str, stored_ts: str):
    try:
        if media == OCTET:
            for data in fr.native_frames(fh, ds, numbers):
                yield f"{OCTET}; transfer-syntax={EXPLICIT_LE}", iter([data])
        else:
            for data in fr.compressed_frames(fh, ds, numbers):
                yield f"{media}; transfer-syntax={stored_ts}", iter([data])
    finally:
        fh.close()


@wire_compressed
@require_perm("archive.view")
@audits_phi_read
def frames(request, study_uid: str, series_uid: str, sop_uid: str, frame_list: str):
    try:
        numbers = fr.parse_frame_list(frame_list)
        inst = one_instance(request, study_uid, series_uid, sop_uid)
        media = choose_frame_media(request.headers.get("Accept"), inst.transfer_syntax_uid)
        fh = open_instance(inst)
    except fr.FrameError as exc:
        return error(400, str(exc))
    except NotFound as exc:
        return error(404, str(exc))
    except NotAcceptable as exc:
        return error(406, str(exc))
    except InstanceUnavailable as exc:
        return error(503, str(exc))
    try:
        ds = fr.read_header(fh, inst.transfer_syntax_uid)
        fr.check_frames(ds, numbers)
        if media == OCTET and fr.needs_whole_read(ds):
            fr.check_whole_read(fh)  # now, not half-way through the stream
    except fr.FrameError as exc:
        fh.close()
        return error(400, str(exc))
    except fr.TooLarge as exc:
        fh.close()
        return error(413, str(exc))
    phi_read(request, action="dicomweb.retrieve", obj_type="study", obj_id=inst.study_id,
             detail={"what": "frames", "level": "instance", "frames": len(numbers)}, repeats=True)
    response = multipart_response(_frame_parts(fh, ds, numbers, media, inst.transfer_syntax_uid),
                                  media, transfer_syntax=EXPLICIT_LE if media == OCTET else None)
    # Not no-store: Chromium then reports a share of a viewer's frame requests failed
    # (ERR_ABORTED; 17 of 60 slices never arrived in bench/viewer.py), while with no-cache
    # every one arrives. no-cache still keeps each use to a fresh, authorized request.
    response["Cache-Control"] = "private, no-cache"
    return response


# Values of these VRs are sent as their bytes in the file; pydicom does not convert them.
RAW_VRS = {"OB", "OW", "OD", "OF", "OL", "OV", "UN", "OB or OW"}


# A BulkDataURI path as /metadata writes them (archive/dicomweb/json.py): a tag, or
# sequence tag / item index (from 0) / ... / tag, tags in 8 hex digits.
BULK_PATH = re.compile(r"[0-9A-Fa-f]{8}(/[0-9]{1,9}/[0-9A-Fa-f]{8})*")


def _bulk_value(fh, ds, path: str) -> Iterator[bytes]:
    """The value at `path` ("TAG" or "TAG/item/TAG..."), read on its own: a large value
    left on disk by read_header streams from its offset in the file."""
    if not BULK_PATH.fullmatch(path):
        raise fr.FrameError(f"no bulk data at {path}: a path is TAG or TAG/item/TAG..., "
                            "tags in 8 hex digits")
    parts = path.split("/")
    node = ds
    for seq_tag, index in zip(parts[:-1:2], parts[1::2], strict=True):
        node = _sequence_item(node, int(seq_tag, 16), int(index), path)
    tag = int(parts[-1], 16)
    elem = node.get_item(tag, keep_deferred=True)
    if elem is None:
        raise fr.FrameError(f"no bulk data at {path}")
    deferred = (isinstance(elem, pydicom.dataelem.RawDataElement) and elem.value is None
                and elem.value_tell is not None)
    if deferred and elem.VR in RAW_VRS and elem.length != 0xFFFFFFFF:
        return _file_range(fh, elem.value_tell, elem.length)
    if deferred and elem.length > fr.max_decode_bytes():
        raise fr.TooLarge(f"value at {path} too large to read here")
    value = node[tag].value
    if not isinstance(value, bytes | bytearray):
        raise fr.FrameError(f"no bulk data at {path}")
    return iter([bytes(value)])


def _sequence_item(node, tag: int, index: int, path: str):
    """Item `index` of the sequence `tag` of `node`. Only a sequence is read: a value of
    another VR (pixel data, say) is not loaded just to find it has no items."""
    raw = node.get_item(tag, keep_deferred=True)
    if raw is None or raw.VR not in ("SQ", None):  # None: implicit VR, known once read
        raise fr.FrameError(f"no bulk data at {path}: {tag:08X} is not a sequence here")
    if isinstance(raw, pydicom.dataelem.RawDataElement) and raw.value is None \
            and raw.length > fr.max_decode_bytes():
        raise fr.TooLarge(f"sequence {tag:08X} too large to read here")
    elem = node[tag]
    if elem.VR != "SQ" or index >= len(elem.value):
        raise fr.FrameError(f"no bulk data at {path}: sequence {tag:08X} has no item {index}")
    return elem.value[index]


def _file_range(fh, offset: int, length: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    fh.seek(offset)
    while length > 0:
        data = fh.read(min(chunk, length))
        if not data:
            raise fr.FrameError("the file ends inside the value")
        length -= len(data)
        yield data


def _closing(fh, chunks: Iterator[bytes]) -> Iterator[bytes]:
    with fh:
        yield from chunks


@require_perm("archive.view")
@audits_phi_read
def bulkdata(request, study_uid: str, series_uid: str, sop_uid: str, tag_path: str):
    """A BulkDataURI from /metadata. Pixel data answers as its frames (like /frames)."""
    try:
        inst = one_instance(request, study_uid, series_uid, sop_uid)
    except NotFound as exc:
        return error(404, str(exc))
    if tag_path.upper() == "7FE00010":
        count = inst.number_of_frames or 1
        return frames(request, study_uid, series_uid, sop_uid, ",".join(str(n) for n in range(1, count + 1)))
    try:
        fh = open_instance(inst)
    except InstanceUnavailable as exc:
        return error(503, str(exc))
    try:
        value = _bulk_value(fh, fr.read_header(fh, inst.transfer_syntax_uid), tag_path)
    except fr.FrameError as exc:
        fh.close()
        return error(404, str(exc))
    except fr.TooLarge as exc:
        fh.close()
        return error(413, str(exc))
    phi_read(request, action="dicomweb.retrieve", obj_type="study", obj_id=inst.study_id,
             detail={"what": "bulkdata", "level": "instance"}, repeats=True)
    return multipart_response([(OCTET, _closing(fh, value))], OCTET)
