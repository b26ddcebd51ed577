from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from tenants.services import tenant_create


class Command(BaseCommand):
    help = "Create a clinic with its owner account. An existing slug is left as it is."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner", required=True, help="owner's email")
        parser.add_argument("--password", required=True, help="owner's password (if the account is new)")

    def handle(self, *args, slug, name, owner, password, **options):
        if not slug or slugify(slug) != slug:
            raise CommandError(f"{slug!r} is not a valid slug (lowercase letters, digits, hyphens)")
        tenant, created = tenant_create(slug=slug, name=name, owner_email=owner, owner_password=password)
        if created:
            self.stdout.write(f"Created clinic {tenant.slug} (AE title {tenant.ae_title}) owned by {owner}")
        else:
            self.stdout.write(f"Clinic {tenant.slug} exists already; left as it is")
