"""Storage URLs, included by archive/urls.py (namespace `archive`)."""

from django.urls import path

from archive.storage import views

urlpatterns = [
    path("settings/storage/", views.storage_settings, name="storage_settings"),
]
