import secrets

from django.conf import settings
from django.core.management.base import BaseCommand

from archive.gateway.models import DicomPeer
from tenants.audit import Actor
from tenants.models import Tenant
from tenants.services import api_token_create, tenant_create

DEMO_SLUG = "demo"
DEMO_EMAIL = "owner@demo.cloudpacs.local"


class Command(BaseCommand):
    help = "Create the demo clinic with an owner and an API token; prints the secrets once."

    def handle(self, *args, **options):
        if Tenant.objects.filter(slug=DEMO_SLUG).exists():
            self.stdout.write(f"Demo clinic exists; log in at {settings.SITE_URL}/login/ as {DEMO_EMAIL}.")
            return
        password = secrets.token_urlsafe(12)
        tenant, _ = tenant_create(slug=DEMO_SLUG, name="Demo Clinic", owner_email=DEMO_EMAIL,
                                  owner_password=password)
        _, raw = api_token_create(tenant=tenant, name="demo uploader", scopes=["upload", "read"],
                                  actor=Actor.system("bootstrap_demo"))
        # dcmtk's and pynetdicom's default calling AE title, so `storescu` works out of the box.
        DicomPeer.objects.for_tenant(tenant).get_or_create(ae_title="STORESCU",
                                                           defaults={"description": "demo sender"})
        self.stdout.write("\n".join([
            "",
            "=" * 72,
            "Demo clinic created. These secrets are shown once only:",
            f"  Log in:      {settings.SITE_URL}/login/",
            f"  Email:       {DEMO_EMAIL}",
            f"  Password:    {password}",
            "  (owners set up two-factor authentication on first login)",
            f"  API token:   {raw}",
            f"  DICOMweb:    {settings.SITE_URL}/t/{DEMO_SLUG}/dicomweb  (Authorization: Bearer <token>)",
            f"  DICOM:       storescu -aec {tenant.ae_title} 127.0.0.1 {settings.DICOM_PORT} FILE.dcm",
            "=" * 72,
            "",
        ]))
