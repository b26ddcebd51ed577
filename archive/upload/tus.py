"""The core of the tus 1.0 resumable upload protocol (https://tus.io/protocols/resumable-upload),
with the creation and termination extensions:

OPTIONS .../files/      -> 204, what the server supports
POST    .../files/      -> 201 + Location   (Upload-Length, Upload-Metadata)
HEAD    .../files/<id>  -> 200 + Upload-Offset, Upload-Length
PATCH   .../files/<id>  -> 204 + Upload-Offset  (application/offset+octet-stream at Upload-Offset)
DELETE  .../files/<id>  -> 204

404: no such upload for this clinic and uploader; 409: wrong Upload-Offset; 412: missing or
unsupported Tus-Resumable; 413: larger than UPLOAD_MAX_BYTES; 415: wrong PATCH type."""

import base64
import binascii

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.urls import reverse

from archive.dicomweb.stow import request_stream
from archive.upload.store import (
    Busy,
    OffsetMismatch,
    batch_exists,
    principal_key,
    upload_append,
    upload_create,
    upload_delete,
    upload_get,
)
from archive.views.admission import uploads_admitted
from tenants.decorators import require_perm

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,termination"


def _response(status: int, body: str = "", **headers) -> HttpResponse:
    response = HttpResponse(body, status=status, content_type="text/plain; charset=utf-8")
    response["Tus-Resumable"] = TUS_VERSION
    response["Cache-Control"] = "no-store"
    for key, value in headers.items():
        response[key.replace("_", "-")] = str(value)
    return response


def parse_metadata(header: str) -> dict[str, str]:
    """`key base64value,key2 base64value2` (a value may be absent). ValueError if broken."""
    metadata: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in header.split(","))):
        key, _, value = pair.partition(" ")
        if not key or " " in value.strip():
            raise ValueError("malformed Upload-Metadata")
        try:
            metadata[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8") if value else ""
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ValueError(f"Upload-Metadata value of {key} is not base64 UTF-8") from exc
    return metadata


def _version_ok(request) -> bool:
    return request.headers.get("Tus-Resumable") == TUS_VERSION


@require_perm("archive.upload")
@uploads_admitted
def files(request):
    if request.method == "OPTIONS":
        return _response(204, Tus_Version=TUS_VERSION, Tus_Extension=EXTENSIONS,
                         Tus_Max_Size=settings.UPLOAD_MAX_BYTES)
    if request.method != "POST":
        return _response(405, "method not allowed", Allow="OPTIONS, POST")
    if not _version_ok(request):
        return _response(412, "Tus-Resumable: 1.0.0 is required", Tus_Version=TUS_VERSION)
    try:
        length = int(request.headers.get("Upload-Length", ""))
        if length < 0:
            raise ValueError
    except ValueError:
        return _response(400, "Upload-Length must be a non-negative integer")
    if length > settings.UPLOAD_MAX_BYTES:
        return _response(413, f"the file is larger than the limit of {settings.UPLOAD_MAX_BYTES} bytes")
    try:
        metadata = parse_metadata(request.headers.get("Upload-Metadata", ""))
    except ValueError as exc:
        return _response(400, str(exc))
    owner = principal_key(request.principal)
    batch = metadata.get("batch", "")
    if batch and not batch_exists(tenant=request.tenant, batch_id=batch, owner=owner):
        return _response(400, "unknown upload batch")
    upload = upload_create(tenant=request.tenant, length=length, metadata=metadata, owner=owner)
    location = reverse("archive:upload_file", kwargs={"tenant_slug": request.tenant.slug,
                                                      "upload_id": upload.id})
    return _response(201, Location=request.build_absolute_uri(location), Upload_Offset=0)


@require_perm("archive.upload")
def file(request, upload_id: str):
    upload = upload_get(tenant=request.tenant, upload_id=upload_id,
                        owner=principal_key(request.principal))
    if upload is None:
        return _response(404, "no such upload")
    if request.method == "HEAD":
        return _response(200, Upload_Offset=upload.offset, Upload_Length=upload.length)
    if request.method == "DELETE":
        if not _version_ok(request):
            return _response(412, "Tus-Resumable: 1.0.0 is required", Tus_Version=TUS_VERSION)
        upload_delete(upload)
        return _response(204)
    if request.method != "PATCH":
        return _response(405, "method not allowed", Allow="HEAD, PATCH, DELETE")
    if not _version_ok(request):
        return _response(412, "Tus-Resumable: 1.0.0 is required", Tus_Version=TUS_VERSION)
    if request.content_type != "application/offset+octet-stream":
        return _response(415, "PATCH bodies must be application/offset+octet-stream")
    try:
        offset = int(request.headers.get("Upload-Offset", ""))
    except ValueError:
        return _response(400, "Upload-Offset must be an integer")
    length_header = request.META.get("CONTENT_LENGTH")
    stream = request_stream(request)
    if stream is None:
        return _response(411, "send Content-Length")
    try:
        new_offset = upload_append(upload=upload, stream=stream, offset=offset,
                                   content_length=int(length_header) if length_header else None)
    except OffsetMismatch as exc:
        return _response(409, str(exc), Upload_Offset=exc.expected)
    except Busy:
        return _response(423, "another request is writing to this upload")
    except ValueError as exc:
        return _response(413, str(exc))
    return _response(204, Upload_Offset=new_offset)


def json_error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)
