from django.urls import include, path

from archive.api import views as api
from archive.dicomweb import qido, stow, wado
from archive.dicomweb import urls as dicomweb_urls
from archive.dicomweb.routing import by_method
from archive.download import views as download_views
from archive.gateway import views as gateway_views
from archive.views import study, worklist

app_name = "archive"
urlpatterns: list = [
    # Shared with QIDO-RS (GET): one path, dispatched by method (archive/dicomweb/routing.py).
    path("dicomweb/studies", by_method(GET=qido.search_studies, POST=stow.store),
         name="dicomweb_studies"),
    # <uid:>, as every DICOMweb UID: a value that is no UID (a NUL, say) is a 404 here.
    path("dicomweb/studies/<uid:study_uid>",
         by_method(GET=wado.retrieve_study, POST=stow.store),
         name="dicomweb_study"),
    # QIDO-RS and WADO-RS (archive/dicomweb/urls.py).
    path("dicomweb/", include(dicomweb_urls.urlpatterns)),
    # Worklist and study page (archive/views/), clinic REST API (archive/api/).
    path("studies/", worklist.worklist, name="worklist"),
    path("studies/<int:pk>/", study.study_page, name="study"),
    path("api/studies/", api.StudyListView.as_view(), name="api_study_list"),
    path("api/studies/search/", api.StudySearchView.as_view(), name="api_study_search"),
    path("api/studies/<int:pk>/", api.StudyDetailView.as_view(), name="api_study_detail"),
    path("api/studies/<int:pk>/storage/", api.StudyStorageView.as_view(), name="api_study_storage"),
    # The clinic's allowed DICOM senders (archive/gateway/).
    path("settings/dicom/", gateway_views.dicom_peers, name="dicom_peers"),
    path("settings/dicom/<int:peer_id>/remove/", gateway_views.dicom_peer_delete, name="dicom_peer_remove"),
    # Browser upload page and its tus endpoints (archive/upload/).
    path("upload/", include("archive.upload.urls")),
    # The study as a zip of DICOM files with a DICOMDIR (archive/download/).
    path("studies/<int:pk>/download.zip", download_views.study_download, name="study_download"),
    # The clinic's whole archive, built by a worker, downloaded by its admins.
    path("settings/export/", download_views.clinic_exports, name="clinic_exports"),
    path("settings/export/<int:export_id>/download.zip", download_views.clinic_export_download,
         name="clinic_export_download"),
    # The OHIF viewer and the phone's thumbnails page (archive/viewer/).
    path("", include("archive.viewer.urls")),
    # Share links: making, listing, revoking (archive/sharing/; the referrer's side is public_urls).
    path("", include("archive.sharing.urls")),
    # The study's report: write, sign, amend, attach a PDF, assign (archive/reports/).
    path("", include("archive.reports.urls")),
    # Corrections of a study's patient details, series moves, merges (archive/corrections/).
    path("", include("archive.corrections.urls")),
    # Retention policy, past-retention report and two-person deletion (archive/retention/).
    path("", include("archive.retention.urls")),
    # The storage page: lossless compression and stored bytes (archive/storage/).
    path("", include("archive.storage.urls")),
]
