"""`manage.py storage_status SLUG [--json]`: a clinic's durable-storage counts."""

import json

from django.core.management.base import BaseCommand

from archive.storage.selectors import storage_status
from tenants.management.clinic import clinic_or_error


class Command(BaseCommand):
    help = "Show how many of a clinic's instances are verified in each region."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, slug: str, json: bool = False, **options):
        tenant = clinic_or_error(slug)
        status = storage_status(tenant=tenant)
        if json:
            self.stdout.write(_dumps(status))
            return
        for key, value in status.items():
            self.stdout.write(f"{key:>28}: {'-' if value is None else value}")


def _dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True)
