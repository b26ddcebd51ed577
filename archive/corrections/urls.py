"""Correction URLs, included by archive/urls.py (namespace `archive`)."""

from django.urls import path

from archive.corrections import views

urlpatterns = [
    path("studies/<int:pk>/correct/", views.correct, name="study_correct"),
    path("studies/<int:pk>/merge/", views.merge, name="study_merge"),
    path("studies/<int:pk>/move-series/", views.move_series, name="series_move"),
    path("corrections/<int:correction_id>/revert/", views.revert, name="correction_revert"),
]
