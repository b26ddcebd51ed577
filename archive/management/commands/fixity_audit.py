"""`manage.py fixity_audit [--limit N]`: re-read copies in both regions now, repair bad ones."""

from django.core.management.base import BaseCommand

from archive.storage.fixity import fixity_run


class Command(BaseCommand):
    help = "Run one fixity audit pass (also scheduled by Celery beat)."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=None, help="instances to check (0 = all)")

    def handle(self, *args, limit: int | None = None, **options):
        run = fixity_run(limit=limit)
        self.stdout.write(f"fixity run {run.pk}: checked {run.checked} copies, ok {run.ok}, "
                          f"repaired {run.repaired}, unrepaired {run.unrepaired}"
                          + (f", stopped: {run.error}" if run.error else ""))
        if run.unrepaired or run.error:
            raise SystemExit(1)
