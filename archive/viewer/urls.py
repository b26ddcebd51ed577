"""Viewer URLs, included under /t/<slug>/ in the archive namespace."""

from django.urls import path

from archive.viewer import views

urlpatterns = [
    path("viewer/", views.viewer, name="viewer"),
    path("viewer/app-config.js", views.viewer_config, name="viewer_config"),
    path("viewer/<path:rest>", views.viewer, name="viewer_route"),
    path("studies/<int:pk>/view/", views.open_study, name="viewer_open"),
    path("studies/<int:pk>/thumbnails/", views.thumbnails, name="study_thumbnails"),
]
