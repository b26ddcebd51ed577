"""Django's `dumpdata`, reading tenant-owned models across every clinic.

Their default manager is the scoped one, which Django's command would trip over; a dump
is the operator's copy of the whole database, all clinics by design."""

from django.core.management.commands import dumpdata

from tenants.scoping import default_manager_unscoped


class Command(dumpdata.Command):
    def handle(self, *app_labels, **options):
        with default_manager_unscoped():
            return super().handle(*app_labels, **options)
