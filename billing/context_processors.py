"""Template context of the billing app."""

from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from billing.charges import period_summary
from billing.grace import account_get
from billing.models import BillingAccount
from billing.prices import money


def billing_banner(request):
    """The grace banner, on every clinic page, for the members who can settle it."""
    tenant, principal = getattr(request, "tenant", None), getattr(request, "principal", None)
    if tenant is None or principal is None or not principal.can("billing.manage"):
        return {}
    account = BillingAccount.objects.for_tenant(tenant).filter(grace_ends_at__isnull=False).first()
    if account is None:
        return {}
    return {"billing_grace": account, "billing_overdue": account.grace_ends_at <= timezone.now()}


def billing_overview(request):
    """For the members who manage billing, this month's studies and total and whether a
    card is on file, for the clinic's dashboard; computed only if a page shows it."""
    tenant, principal = getattr(request, "tenant", None), getattr(request, "principal", None)
    if tenant is None or principal is None or not principal.can("billing.manage"):
        return {}

    def overview() -> dict:
        month, account = period_summary(tenant=tenant), account_get(tenant)
        return {"studies": month["studies"], "billed": month["billed"],
                "totals": [money(total, currency) for currency, total in sorted(month["totals"].items())],
                "card": f"{account.card_brand.title()} •••• {account.card_last4}" if account.has_card else "",
                "in_grace": account.in_grace}

    return {"billing_overview": SimpleLazyObject(overview)}
