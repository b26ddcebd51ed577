"""Read-only views of a clinic's billing, for the status command and the pages."""

from billing import grace, stripe_api
from billing.charges import period_summary
from billing.models import Charge, Invoice
from billing.prices import price_in_effect


def provisional_amount(charge: Charge) -> tuple[int | None, str]:
    """A recorded charge's amount if its study were complete now (not counting the free
    allowance, which is decided when it is priced)."""
    price = price_in_effect(tenant=charge.tenant, at=charge.recorded_at)
    if price is None:
        return 0, ""
    study = charge.study
    modalities = study.modality_list if study else []
    return price.amount_for(modalities=modalities, size_bytes=study.size_bytes if study else 0), price.currency


def billing_status(*, tenant) -> dict:
    account = grace.account_get(tenant)
    charges = []
    for charge in Charge.objects.for_tenant(tenant).select_related("study", "tenant").order_by("recorded_at", "pk"):
        amount, currency, final = charge.amount, charge.currency, charge.state != Charge.RECORDED
        if not final:
            amount, currency = provisional_amount(charge)
        charges.append({
            "study_instance_uid": charge.study_instance_uid, "amount": amount, "currency": currency,
            "amount_final": final, "state": charge.state, "sent": bool(charge.stripe_invoice_item_id),
            "stripe_id": charge.stripe_invoice_item_id or None, "stripe_invoice_id": charge.stripe_invoice_id or None,
            "recorded_at": charge.recorded_at.isoformat(), "reference": str(charge.uuid)})
    summary = period_summary(tenant=tenant)
    return {
        "clinic": tenant.slug, "stripe_enabled": stripe_api.enabled(),
        "customer": account.stripe_customer_id or None, "card": (
            {"brand": account.card_brand, "last4": account.card_last4} if account.has_card else None),
        "grace": ({"reason": account.grace_reason, "ends": account.grace_ends_at.isoformat()}
                  if account.in_grace else None),
        "uploads_refused": grace.upload_refusal(tenant) is not None,
        "this_month": {"studies": summary["studies"], "billed": summary["billed"], "free": summary["free"],
                       "totals": summary["totals"]},
        "charges": charges,
        "invoices": [{"stripe_id": i.stripe_id, "period": i.period, "status": i.status, "amount_due": i.amount_due,
                      "currency": i.currency} for i in Invoice.objects.for_tenant(tenant)],
    }
