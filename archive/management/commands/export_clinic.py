"""`manage.py export_clinic SLUG --to DIR | s3://BUCKET/PREFIX`: every study of a clinic as
decrypted DICOM files with a DICOMDIR per study and a CSV manifest (archive/download/
export.py). Run it again after an interruption: it resumes."""

from django.core.management.base import BaseCommand, CommandError

from archive.download.export import ExportError, clinic_export
from tenants.audit import Actor
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Export a clinic's studies as DICOM files with DICOMDIRs and a manifest (resumable)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--to", required=True, help="a folder, or s3://BUCKET/PREFIX (credentials and "
                                                        "endpoint from the AWS_* environment variables)")

    def handle(self, *args, slug: str, to: str, **options):
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"no clinic {slug!r}")
        try:
            progress = clinic_export(tenant=tenant, to=to, actor=Actor.system("export_clinic"),
                                     report=lambda p: self.stderr.write(p.line()))
        except ExportError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"exported {progress.studies_done} studies of {slug} to {to} "
                          f"({progress.studies_skipped} were there already, {progress.instances} instances "
                          f"written, {progress.bytes_done / 1e6:,.1f} MB)")
