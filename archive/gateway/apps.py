"""The DIMSE doors (C-ECHO, C-STORE, C-FIND, C-GET, C-MOVE, storage commitment) and the
clinics' DICOM peers."""

from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "archive.gateway"
    label = "gateway"
    verbose_name = "DICOM gateway"

    def ready(self) -> None:
        from archive.gateway import work  # noqa: F401 - registers the outbox work
