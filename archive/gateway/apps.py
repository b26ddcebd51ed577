"""The DIMSE doors (C-ECHO, C-STORE) and the clinics' allowed senders."""

from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "archive.gateway"
    label = "gateway"
    verbose_name = "DICOM gateway"
