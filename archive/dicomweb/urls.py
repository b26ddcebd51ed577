"""DICOMweb URL patterns under /t/<slug>/dicomweb/ (QIDO-RS and WADO-RS; STOW-RS shares
two paths through `by_method`). Included from archive/urls.py, in the `archive` namespace."""

from django.urls import path, register_converter

from archive.dicomweb import qido, rendered, wado


class UIDConverter:
    regex = r"[0-9][0-9.]{0,63}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(UIDConverter, "uid")

S = "studies/<uid:study_uid>"
SE = S + "/series/<uid:series_uid>"
I = SE + "/instances/<uid:sop_uid>"  # noqa: E741

urlpatterns = [
    path("series", qido.search_series, name="dicomweb_all_series"),
    path("instances", qido.search_instances, name="dicomweb_all_instances"),
    path(S + "/metadata", wado.metadata, name="dicomweb_study_metadata"),
    path(S + "/series", qido.search_series, name="dicomweb_study_series"),
    path(S + "/instances", qido.search_instances, name="dicomweb_study_instances"),
    path(S + "/thumbnail", rendered.thumbnail, name="dicomweb_study_thumbnail"),
    path(SE, wado.retrieve_series, name="dicomweb_series"),
    path(SE + "/metadata", wado.metadata, name="dicomweb_series_metadata"),
    path(SE + "/instances", qido.search_instances, name="dicomweb_series_instances"),
    path(SE + "/thumbnail", rendered.thumbnail, name="dicomweb_series_thumbnail"),
    path(I, wado.retrieve_instance, name="dicomweb_instance"),
    path(I + "/metadata", wado.metadata, name="dicomweb_instance_metadata"),
    path(I + "/rendered", rendered.instance_rendered, name="dicomweb_instance_rendered"),
    path(I + "/thumbnail", rendered.thumbnail, name="dicomweb_instance_thumbnail"),
    path(I + "/frames/<str:frame_list>", wado.frames, name="dicomweb_frames"),
    path(I + "/frames/<str:frame_list>/rendered", rendered.frame_rendered, name="dicomweb_frames_rendered"),
    path(I + "/bulkdata/<path:tag_path>", wado.bulkdata, name="dicomweb_bulkdata"),
]
