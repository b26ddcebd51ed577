"""`manage.py restore_from_region secondary [--tenant SLUG]`: rebuild the index, tier 1 and
the other region from one region alone, with progress. Runs beside the live service;
safe to interrupt and run again (what is indexed already is skipped)."""

from django.core.management.base import BaseCommand, CommandError

from archive.storage.restore import RestoreReport, region_restore
from cloudpacs.objectstore.regions import REGIONS
from tenants.management.clinic import clinic_or_error


class Command(BaseCommand):
    help = "Rebuild the archive index and the other region from one region's objects."

    def add_arguments(self, parser):
        parser.add_argument("region", choices=REGIONS)
        parser.add_argument("--tenant", help="only this clinic (slug)")
        parser.add_argument("--no-copy", action="store_true",
                            help="leave the copy to the other region to the Celery workers")

    def handle(self, *args, region: str, tenant: str | None = None, no_copy: bool = False, **options):
        clinic = None
        if tenant:
            clinic = clinic_or_error(tenant)

        def progress(report: RestoreReport) -> None:
            done = report.restored + report.skipped + report.deleted + report.superseded + len(report.failed)
            self.stdout.write(f"restore: {done}/{report.total} objects, {report.restored} restored, "
                              f"{report.skipped} already indexed, {report.deleted} of deleted studies kept gone, "
                              f"{report.superseded} earlier headers of corrected images left aside, "
                              f"{len(report.failed)} failed, "
                              f"{len(report.refused)} refused (clinic not here or not theirs), "
                              f"{report.bytes / 1e6:.1f} MB")
            self.stdout.flush()

        report = region_restore(region=region, tenant=clinic, drive=not no_copy, progress=progress)
        for failure in report.failed:
            self.stderr.write(f"failed: {failure}")
        for refusal in report.refused:
            self.stderr.write(f"refused: {refusal}")
        if report.failed or report.refused:
            raise CommandError(f"{len(report.failed)} objects could not be restored, "
                               f"{len(report.refused)} refused: their clinic is not here or not theirs")
        self.stdout.write(self.style.SUCCESS(f"restored {report.restored} instances from {region}"))
