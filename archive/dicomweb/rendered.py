"""WADO-RS rendered resources and thumbnails (PS3.18 8.3.5.1.3, 10.4.1.1.3, 10.9)."""

from django.http import HttpResponse

from archive.dicomweb import frames as fr
from archive.dicomweb.common import error
from archive.dicomweb.negotiate import NotAcceptable, choose_image_media
from archive.dicomweb.render import RenderError, RenderOptions, frame_image, parse_options
from archive.errors import NotFound
from archive.selectors import studies
from archive.storage.reader import InstanceUnavailable, open_instance
from tenants.decorators import require_perm
from tenants.phi_audit import audits_phi_read, phi_read

THUMBNAIL_VIEWPORT = (128, 128)


def _render(request, inst, frame_number: int, *, what: str, default_viewport=None) -> HttpResponse:
    try:
        media = choose_image_media(request.headers.get("Accept"))
        options: RenderOptions = parse_options(request.GET, media)
    except NotAcceptable as exc:
        return error(406, str(exc))
    except RenderError as exc:
        return error(400, str(exc))
    if options.viewport is None and default_viewport:
        options.viewport = default_viewport
    try:
        with open_instance(inst) as fh:
            fr.check_frames(fr.read_header(fh, inst.transfer_syntax_uid), [frame_number])
            image = frame_image(fh, frame_number - 1, options)
    except fr.FrameError as exc:
        return error(400, str(exc))
    except fr.TooLarge as exc:
        return error(413, str(exc))
    except InstanceUnavailable as exc:
        return error(503, str(exc))
    except Exception as exc:  # noqa: BLE001 - decoders raise many types on odd pixel data
        return error(422, f"cannot render this image: {type(exc).__name__}")
    phi_read(request, action="dicomweb.retrieve", obj_type="study", obj_id=inst.study_id,
             detail={"what": what, "level": "instance", "frame": frame_number}, repeats=True)
    response = HttpResponse(image, content_type=options.media)
    response["Cache-Control"] = "private, max-age=3600"
    return response


def _instance(request, study_uid, series_uid, sop_uid):
    return studies.instances_for_retrieve(tenant=request.tenant, study_uid=study_uid,
                                            series_uid=series_uid, sop_uid=sop_uid)[0]


@require_perm("archive.view")
@audits_phi_read
def instance_rendered(request, study_uid: str, series_uid: str, sop_uid: str):
    try:
        inst = _instance(request, study_uid, series_uid, sop_uid)
    except NotFound as exc:
        return error(404, str(exc))
    return _render(request, inst, 1, what="rendered")


@require_perm("archive.view")
@audits_phi_read
def frame_rendered(request, study_uid: str, series_uid: str, sop_uid: str, frame_list: str):
    try:
        numbers = fr.parse_frame_list(frame_list)
        inst = _instance(request, study_uid, series_uid, sop_uid)
    except fr.FrameError as exc:
        return error(400, str(exc))
    except NotFound as exc:
        return error(404, str(exc))
    if len(numbers) != 1:
        return error(400, "render one frame per request")
    return _render(request, inst, numbers[0], what="rendered")


def _representative(instances):
    """The middle image of the first series that has pixel data."""
    images = [i for i in instances if i.rows] or instances
    first_series = [i for i in images if i.series_id == images[0].series_id]
    return first_series[len(first_series) // 2]


@require_perm("archive.view")
@audits_phi_read
def thumbnail(request, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None):
    try:
        instances = studies.instances_for_retrieve(tenant=request.tenant, study_uid=study_uid,
                                                     series_uid=series_uid, sop_uid=sop_uid)
    except NotFound as exc:
        return error(404, str(exc))
    return _render(request, _representative(instances), 1, what="thumbnail",
                   default_viewport=THUMBNAIL_VIEWPORT)
