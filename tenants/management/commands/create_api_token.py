from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tenants.audit import Actor
from tenants.models import Tenant
from tenants.services import api_token_create


class Command(BaseCommand):
    help = "Create an API token for a clinic; the token is printed alone on the last line, once."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--scopes", default="upload,read", help="comma-separated: upload,read")

    def handle(self, *args, slug, name, scopes, **options):
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"No clinic with slug {slug!r}")
        try:
            token, raw = api_token_create(
                tenant=tenant, name=name, scopes=[s.strip() for s in scopes.split(",") if s.strip()],
                actor=Actor.system("create_api_token"))
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(f"API token {token.name!r} for {tenant.slug}, scopes {','.join(token.scopes)}:")
        self.stdout.write(raw)
