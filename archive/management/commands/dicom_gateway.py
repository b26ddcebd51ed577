from django.conf import settings
from django.core.management.base import BaseCommand

from archive.gateway.server import start_gateway


class Command(BaseCommand):
    help = "Run the DICOM gateway (C-ECHO, C-STORE). The called AE title selects the clinic."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.DICOM_HOST)
        parser.add_argument("--port", type=int, default=settings.DICOM_PORT)

    def handle(self, *args, host, port, **options):
        self.stdout.write(f"DICOM gateway on {host}:{port}")
        start_gateway(host, port, block=True)
