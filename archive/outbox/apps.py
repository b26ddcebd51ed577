"""The transactional outbox: follow-up work committed with the data it is about."""

from django.apps import AppConfig


class OutboxConfig(AppConfig):
    name = "archive.outbox"
    label = "outbox"
    verbose_name = "Outbox"
