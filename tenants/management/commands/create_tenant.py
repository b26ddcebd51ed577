from uuid import UUID

from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from tenants.models import Tenant
from tenants.services import tenant_create


class Command(BaseCommand):
    help = "Create a clinic with its owner account. An existing slug is left as it is."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner", required=True, help="owner's email")
        parser.add_argument("--password", required=True, help="owner's password (if the account is new)")
        parser.add_argument("--uuid", type=UUID, help="re-create a clinic with its identity (as "
                            "restore_from_region names it), so its archive is restored into it")

    def handle(self, *args, slug, name, owner, password, uuid=None, **options):
        if not slug or slugify(slug) != slug:
            raise CommandError(f"{slug!r} is not a valid slug (lowercase letters, digits, hyphens)")
        if uuid and Tenant.objects.filter(uuid=uuid).exclude(slug=slug).exists():
            raise CommandError(f"another clinic has the uuid {uuid}")
        tenant, created = tenant_create(slug=slug, name=name, owner_email=owner, owner_password=password,
                                        uuid=uuid)
        if created:
            self.stdout.write(f"Created clinic {tenant.slug} (AE title {tenant.ae_title}) owned by {owner}; "
                              f"uuid {tenant.uuid}")
        elif uuid and tenant.uuid != uuid:
            raise CommandError(f"clinic {tenant.slug} exists already with another uuid ({tenant.uuid})")
        else:
            self.stdout.write(f"Clinic {tenant.slug} exists already; left as it is")
