from django.apps import AppConfig


class ArchiveConfig(AppConfig):
    name = "archive"
    verbose_name = "Archive"

    def ready(self) -> None:
        # pydicom warns (to its logger and to `warnings`) about every non-conforming value
        # it reads, quoting the value: patient names, IDs and UIDs would reach the logs.
        # Ingest validates what the archive keys on itself (archive.uids) and refuses with
        # a reason that names the attribute, never the value.
        from pydicom import config

        config.settings.reading_validation_mode = config.IGNORE
