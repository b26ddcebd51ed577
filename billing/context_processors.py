"""Template context of the billing app."""

from django.utils import timezone

from billing.models import BillingAccount


def billing_banner(request):
    """The grace banner, on every clinic page, for the members who can settle it."""
    tenant, principal = getattr(request, "tenant", None), getattr(request, "principal", None)
    if tenant is None or principal is None or not principal.can("billing.manage"):
        return {}
    account = BillingAccount.objects.for_tenant(tenant).filter(grace_ends_at__isnull=False).first()
    if account is None:
        return {}
    return {"billing_grace": account, "billing_overdue": account.grace_ends_at <= timezone.now()}
