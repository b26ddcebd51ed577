"""The browser viewer: the prebuilt OHIF viewer served same-origin, configured per request."""

from django.apps import AppConfig


class ViewerConfig(AppConfig):
    name = "archive.viewer"
    label = "viewer"
    verbose_name = "Browser viewer"
