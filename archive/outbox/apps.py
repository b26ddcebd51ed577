"""The transactional outbox: follow-up work committed with the data it is about."""

from django.apps import AppConfig


class OutboxConfig(AppConfig):
    name = "archive.outbox"
    label = "outbox"
    verbose_name = "Outbox"

    def ready(self) -> None:
        # Registers the task entry points in every process (web, gateway, commands), not
        # only in the worker, whose autodiscovery would find them: publishing looks them up.
        from archive.outbox import tasks  # noqa: F401
