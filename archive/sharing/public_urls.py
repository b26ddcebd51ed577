"""The referrer's URLs (no account): /s/<token> and, once opened, /s/v/<public id>/...
The share's DICOMweb root offers what a viewer reads (QIDO-RS of its studies, WADO-RS,
rendered images, thumbnails), each view wrapped so that it runs bounded to the share."""

from django.urls import path
from django.views.decorators.http import require_safe

from archive.dicomweb import qido, wado
from archive.dicomweb import urls as dicomweb_urls
from archive.sharing import public

app_name = "sharing"

# Every clinic DICOMweb read that names a study (the wrapper checks it is one of the
# share's); the study search is bounded by the principal instead. Searches across the
# clinic's series or instances, and STOW-RS, are not offered.
_STUDY_PATHS = [p for p in dicomweb_urls.urlpatterns if str(p.pattern).startswith("studies/")]

urlpatterns = [
    path("s/v/<uuid:public_id>/", public.share_page, name="page"),
    path("s/v/<uuid:public_id>/studies/<int:pk>/download.zip", public.share_download, name="download"),
    path("s/v/<uuid:public_id>/studies/<int:pk>/report/<int:number>.pdf", public.share_report_pdf,
         name="report_pdf"),
    path("s/v/<uuid:public_id>/viewer/", public.share_viewer, name="viewer"),
    path("s/v/<uuid:public_id>/viewer/app-config.js", public.share_viewer_config, name="viewer_config"),
    path("s/v/<uuid:public_id>/viewer/<path:rest>", public.share_viewer, name="viewer_route"),
    path("s/v/<uuid:public_id>/dicomweb/studies", public.share_session(require_safe(qido.search_studies)),
         name="dicomweb_studies"),
    path("s/v/<uuid:public_id>/dicomweb/studies/<uid:study_uid>",
         public.share_session(require_safe(wado.retrieve_study)), name="dicomweb_study"),
    *[path(f"s/v/<uuid:public_id>/dicomweb/{p.pattern}", public.share_session(p.callback), name=p.name)
      for p in _STUDY_PATHS],
    # Last: any other /s/... is a token.
    path("s/<str:token>", public.open_link, name="open"),
]
