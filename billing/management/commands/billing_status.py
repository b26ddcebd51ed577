"""`manage.py billing_status SLUG [--json]`: a clinic's charges, card, grace and invoices."""

import json

from django.core.management.base import BaseCommand

from billing.selectors import billing_status
from tenants.management.clinic import clinic_or_error


class Command(BaseCommand):
    help = "Show a clinic's billing: each study's charge, the card on file, grace and invoices."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, slug: str, json: bool = False, **options):
        tenant = clinic_or_error(slug)
        status = billing_status(tenant=tenant)
        if json:
            self.stdout.write(_dumps(status))
            return
        for key in ("clinic", "stripe_enabled", "customer", "card", "grace", "uploads_refused", "this_month"):
            self.stdout.write(f"{key:>16}: {status[key]}")
        self.stdout.write(f"{'charges':>16}: {len(status['charges'])}")
        for c in status["charges"]:
            amount = "-" if c["amount"] is None else f"{c['amount']} {c['currency']}"
            self.stdout.write(f"  {c['recorded_at'][:19]} {c['study_instance_uid']} {amount} {c['state']}"
                              f" {c['stripe_id'] or 'not sent'}")


def _dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True)
