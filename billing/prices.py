"""Which price applies to a clinic at a moment: its own override if it has one in effect,
else its plan's (the default plan when it has none)."""

from billing.models import BillingAccount, Plan, PriceVersion


def price_in_effect(*, tenant, at) -> PriceVersion | None:
    """The price version in effect for the clinic at `at`, or None (nothing is charged)."""
    override = PriceVersion.objects.filter(tenant=tenant, effective_from__lte=at).first()
    if override is not None:
        return override
    account = BillingAccount.objects.for_tenant(tenant).select_related("plan").first()
    plan = account.plan if account and account.plan_id else Plan.objects.filter(is_default=True).first()
    if plan is None:
        return None
    return PriceVersion.objects.filter(plan=plan, effective_from__lte=at).first()


def money(amount: int, currency: str) -> str:
    """An amount in the currency's smallest unit, as people read it: 1234, "usd" -> "12.34 USD"."""
    return f"{amount / 100:,.2f} {currency.upper()}" if currency else "—"
