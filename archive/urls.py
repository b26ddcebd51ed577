from django.urls import include, path

from archive.dicomweb import qido, wado
from archive.dicomweb import urls as dicomweb_urls
from archive.dicomweb.routing import by_method

app_name = "archive"
urlpatterns: list = [
    # Shared with QIDO-RS (GET): one path, dispatched by method (archive/dicomweb/routing.py).
    path("dicomweb/studies", by_method(GET=qido.search_studies, POST="archive.dicomweb.stow.store"),
         name="dicomweb_studies"),
    path("dicomweb/studies/<str:study_uid>",
         by_method(GET=wado.retrieve_study, POST="archive.dicomweb.stow.store"),
         name="dicomweb_study"),
    # QIDO-RS and WADO-RS (archive/dicomweb/urls.py).
    path("dicomweb/", include(dicomweb_urls.urlpatterns)),
]
