"""Retention URLs, included by archive/urls.py (namespace `archive`)."""

from django.urls import path

from archive.retention import views

urlpatterns = [
    path("settings/retention/", views.retention_settings, name="retention_settings"),
    path("retention/", views.retention_report, name="retention_report"),
    path("studies/<int:pk>/delete/", views.study_delete_request, name="study_delete_request"),
    path("deletions/", views.deletion_requests, name="deletion_requests"),
    path("deletions/<int:request_id>/approve/", views.deletion_approve, name="deletion_approve"),
    path("deletions/<int:request_id>/cancel/", views.deletion_cancel, name="deletion_cancel"),
    path("deletions/purges/<int:tombstone_id>/retry/", views.tombstone_purge, name="tombstone_purge"),
]
