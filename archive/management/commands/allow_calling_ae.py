"""`manage.py allow_calling_ae SLUG AE_TITLE [--ip CIDR]`: let a calling AE title send to a
clinic (only from that address range, when given). Audited like the DICOM peers page."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from archive.gateway.services import dicom_sender_allow
from tenants.audit import Actor
from tenants.management.clinic import clinic_or_error


class Command(BaseCommand):
    help = "Let a calling AE title into a clinic, optionally only from an address range."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("ae_title")
        parser.add_argument("--ip", default="", metavar="CIDR", help="only from this address or range")

    def handle(self, *args, slug: str, ae_title: str, ip: str, **options):
        tenant = clinic_or_error(slug)
        try:
            peer = dicom_sender_allow(tenant=tenant, ae_title=ae_title, network=ip,
                                      actor=Actor.system("manage.py allow_calling_ae"))
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(f"{peer.ae_title} may send to {tenant.ae_title} from {peer.network or 'any address'}")
