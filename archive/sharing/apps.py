"""Share links: a study (or a patient's studies) for a referring physician or a patient."""

from django.apps import AppConfig


class SharingConfig(AppConfig):
    name = "archive.sharing"
    label = "sharing"
    verbose_name = "Share links"
