"""`manage.py add_dicom_destination SLUG AE_TITLE HOST PORT`: a C-MOVE destination of a
clinic (a peer it may send studies to). Audited like the DICOM peers page."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from archive.gateway.services import dicom_destination_set
from tenants.audit import Actor
from tenants.management.clinic import clinic_or_error


class Command(BaseCommand):
    help = "Add (or move) a clinic's DICOM destination: an AE title at a host and port."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("ae_title")
        parser.add_argument("host")
        parser.add_argument("port", type=int)

    def handle(self, *args, slug: str, ae_title: str, host: str, port: int, **options):
        tenant = clinic_or_error(slug)
        try:
            peer = dicom_destination_set(tenant=tenant, ae_title=ae_title, host=host, port=port,
                                         actor=Actor.system("manage.py add_dicom_destination"))
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(f"{peer.ae_title} at {peer.host}:{peer.port} is a destination of {tenant.slug}")
