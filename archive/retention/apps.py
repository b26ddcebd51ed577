"""How long studies are kept, and two-person deletion."""

from django.apps import AppConfig


class RetentionConfig(AppConfig):
    name = "archive.retention"
    label = "retention"
    verbose_name = "Retention"
