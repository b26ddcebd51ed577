"""Resumable browser uploads (tus) and zip imports."""

from django.apps import AppConfig


class UploadConfig(AppConfig):
    name = "archive.upload"
    label = "upload"
    verbose_name = "Browser upload"
