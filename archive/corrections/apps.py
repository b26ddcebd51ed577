from django.apps import AppConfig


class CorrectionsConfig(AppConfig):
    name = "archive.corrections"
    label = "corrections"
    verbose_name = "Corrections"
