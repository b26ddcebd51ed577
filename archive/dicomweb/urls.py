"""DICOMweb URL patterns under /t/<slug>/dicomweb/ (QIDO-RS and WADO-RS; STOW-RS shares
two paths through `by_method`). Included from archive/urls.py, in the `archive` namespace."""

from django.urls import path, register_converter
from django.views.decorators.http import require_safe

from archive.dicomweb import qido, rendered, wado
from archive.uids import UID_URL_REGEX, is_valid_uid


class UIDConverter:
    """Only a valid UID (PS3.5 9.1) matches; anything else is 404 before a view runs."""

    regex = UID_URL_REGEX

    def to_python(self, value: str) -> str:
        if not is_valid_uid(value):
            raise ValueError("not a UID")  # Django: this pattern does not match
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(UIDConverter, "uid")

S = "studies/<uid:study_uid>"
SE = S + "/series/<uid:series_uid>"
I = SE + "/instances/<uid:sop_uid>"  # noqa: E741

urlpatterns = [
    path("series", require_safe(qido.search_series), name="dicomweb_all_series"),
    path("instances", require_safe(qido.search_instances), name="dicomweb_all_instances"),
    path(S + "/metadata", require_safe(wado.metadata), name="dicomweb_study_metadata"),
    path(S + "/series", require_safe(qido.search_series), name="dicomweb_study_series"),
    path(S + "/instances", require_safe(qido.search_instances), name="dicomweb_study_instances"),
    path(S + "/thumbnail", require_safe(rendered.thumbnail), name="dicomweb_study_thumbnail"),
    path(SE, require_safe(wado.retrieve_series), name="dicomweb_series"),
    path(SE + "/metadata", require_safe(wado.metadata), name="dicomweb_series_metadata"),
    path(SE + "/instances", require_safe(qido.search_instances), name="dicomweb_series_instances"),
    path(SE + "/thumbnail", require_safe(rendered.thumbnail), name="dicomweb_series_thumbnail"),
    path(I, require_safe(wado.retrieve_instance), name="dicomweb_instance"),
    path(I + "/metadata", require_safe(wado.metadata), name="dicomweb_instance_metadata"),
    path(I + "/rendered", require_safe(rendered.instance_rendered), name="dicomweb_instance_rendered"),
    path(I + "/thumbnail", require_safe(rendered.thumbnail), name="dicomweb_instance_thumbnail"),
    path(I + "/frames/<str:frame_list>", require_safe(wado.frames), name="dicomweb_frames"),
    path(I + "/frames/<str:frame_list>/rendered", require_safe(rendered.frame_rendered), name="dicomweb_frames_rendered"),
    path(I + "/bulkdata/<path:tag_path>", require_safe(wado.bulkdata), name="dicomweb_bulkdata"),
]
