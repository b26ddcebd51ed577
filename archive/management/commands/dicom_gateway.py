from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from archive.gateway.server import start_gateway
from archive.gateway.tls import TLSConfigError, configured_tls_context


class Command(BaseCommand):
    help = ("Run the DICOM gateway (C-ECHO, C-STORE, C-FIND, C-GET, C-MOVE, storage commitment); "
            "the called AE title selects the clinic. Also DICOM over TLS on --tls-port when "
            "DICOM_TLS_CERT and DICOM_TLS_KEY are set.")

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.DICOM_HOST)
        parser.add_argument("--port", type=int, default=settings.DICOM_PORT)
        parser.add_argument("--tls-port", type=int, default=settings.DICOM_TLS_PORT)

    def handle(self, *args, host, port, tls_port, **options):
        try:
            context = configured_tls_context(settings)
        except TLSConfigError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"DICOM gateway on {host}:{port}" + (f", TLS on {host}:{tls_port}" if context else ""))
        start_gateway(host, port, block=True, tls_port=tls_port, ssl_context=context)
