"""Encrypted copies in two regions, tier 1, keys, fixity and restore."""

from django.apps import AppConfig


class StorageConfig(AppConfig):
    name = "archive.storage"
    label = "storage"
    verbose_name = "Durable storage"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from archive.storage import handlers  # noqa: F401 - registers the archive work with the outbox
        from archive.storage.keys import key_cache_clear
        from archive.storage.models import DataKey

        post_save.connect(key_cache_clear, sender=DataKey, dispatch_uid="data-key-cache")
        post_delete.connect(key_cache_clear, sender=DataKey, dispatch_uid="data-key-cache")
