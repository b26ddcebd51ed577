"""Browser upload URLs, included under /t/<slug>/upload/ in the archive namespace."""

from django.urls import path

from archive.upload import tus, views

urlpatterns = [
    path("", views.upload_page, name="upload"),
    path("batches/", views.batch_start, name="upload_batch_start"),
    path("batches/<str:batch_id>/close", views.batch_finish, name="upload_batch_close"),
    path("files/", tus.files, name="upload_files"),
    path("files/<str:upload_id>", tus.file, name="upload_file"),
    path("files/<str:upload_id>/ingest", views.upload_finish, name="upload_ingest"),
]
