from django.core.management.base import BaseCommand, CommandError

from tenants.audit import AuditEvent, audit_verify
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Verify every clinic's audit hash chain; exits non-zero if any row was changed or removed."

    def add_arguments(self, parser):
        parser.add_argument("slug", nargs="?", help="only this clinic")

    def handle(self, *args, slug=None, **options):
        tenants = Tenant.objects.all() if slug is None else Tenant.objects.filter(slug=slug)
        if slug is not None and not tenants.exists():
            raise CommandError(f"No clinic with slug {slug!r}")
        broken = 0
        for tenant in tenants.order_by("slug"):
            count = AuditEvent.objects.for_tenant(tenant).count()
            problems = audit_verify(tenant=tenant)
            if problems:
                broken += 1
                for problem in problems:
                    self.stdout.write(f"{tenant.slug}: event {problem.seq}: {problem.problem}")
            else:
                self.stdout.write(f"{tenant.slug}: {count} events, chain intact")
        if broken:
            raise CommandError(f"Audit chain broken in {broken} clinic(s)")
