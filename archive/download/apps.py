"""Getting data out: a study as a zip, and a clinic's whole archive (export)."""

from django.apps import AppConfig


class DownloadConfig(AppConfig):
    name = "archive.download"
    label = "download"
    verbose_name = "Downloads and exports"

    def ready(self) -> None:
        # Registers the export's task in every process (the web process queues it by name).
        from archive.download import tasks  # noqa: F401
