"""What the clinic commands (storage_status, billing_status, allow_calling_ae...) share."""

from django.core.management.base import CommandError

from tenants.models import Tenant


def clinic_or_error(slug: str) -> Tenant:
    """The clinic with this slug, or a CommandError naming it."""
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise CommandError(f"no clinic with slug {slug!r}")
    return tenant
