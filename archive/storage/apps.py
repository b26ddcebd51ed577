"""Encrypted copies in two regions, tier 1, keys, fixity and restore."""

from django.apps import AppConfig


class StorageConfig(AppConfig):
    name = "archive.storage"
    label = "storage"
    verbose_name = "Durable storage"

    def ready(self) -> None:
        from archive.storage import handlers  # noqa: F401 - registers the archive work with the outbox
