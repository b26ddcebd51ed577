from django.core.management.base import BaseCommand, CommandError

from tenants.audit import AuditEvent, audit_verify
from tenants.audit_anchor import anchors_verify
from tenants.audit_keys import AuditKeyError, chain_key
from tenants.models import Tenant

WRONG_KEY = "cannot verify: wrong or missing master key"


class Command(BaseCommand):
    help = ("Verify every clinic's audit chain (keyed hashes) and its newest anchors in the "
            "storage regions; exits non-zero if any row was changed or removed.")

    def add_arguments(self, parser):
        parser.add_argument("slug", nargs="?", help="only this clinic")

    def handle(self, *args, slug=None, **options):
        tenants = Tenant.objects.all() if slug is None else Tenant.objects.filter(slug=slug)
        if slug is not None and not tenants.exists():
            raise CommandError(f"No clinic with slug {slug!r}")
        try:
            chain_key()
        except AuditKeyError as exc:
            raise CommandError(str(exc)) from None
        broken = wrong_key = 0
        unreachable: dict[str, str] = {}
        for tenant in tenants.order_by("slug"):
            count = AuditEvent.objects.for_tenant(tenant).count()
            try:
                problems = audit_verify(tenant=tenant)
            except AuditKeyError:
                wrong_key += 1
                self.stdout.write(f"{tenant.slug}: {WRONG_KEY}")
                continue
            anchors = anchors_verify(tenant=tenant, unreachable=unreachable)
            for problem in problems:
                where = f"event {problem.seq}: " if problem.seq is not None else ""
                self.stdout.write(f"{tenant.slug}: {where}{problem.problem}")
            for problem in anchors.problems:
                self.stdout.write(f"{tenant.slug}: {problem}")
            if problems or anchors.problems:
                broken += 1
                for note in anchors.notes:
                    if "unreachable" in note:  # what else might be wrong is unknown
                        self.stdout.write(f"{tenant.slug}: {note}")
            else:
                self.stdout.write(f"{tenant.slug}: {count} events, chain intact; "
                                  + "; ".join(anchors.notes))
        if wrong_key:
            # Every row would look altered: say what is wrong instead of flagging them all.
            raise CommandError(f"{WRONG_KEY} ({wrong_key} clinic(s)); is CLOUDPACS_MASTER_KEY "
                               "the one this archive was written with?")
        if broken:
            raise CommandError(f"Audit chain broken in {broken} clinic(s)")
