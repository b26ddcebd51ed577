"""The monthly invoice: once a month ends, each clinic's sent charges go on one Stripe
invoice, which is finalized and paid from the card on file.

Once per clinic and month: an invoice of the period, ours or found in Stripe by its
description, is paid rather than made again, so the hourly task may run it as often as it
likes. localstripe, which the tests use, has no finalize endpoint; a draft it cannot
finalize is paid as it is (its `pay` takes drafts)."""

import logging
from datetime import timedelta

import stripe
from django.db import transaction
from django.utils import timezone

from billing import grace, stripe_api
from billing.charges import month_bounds
from billing.models import BillingAccount, Charge, Invoice
from billing.stripe_push import customer_ensure
from tenants.audit import audit_record

log = logging.getLogger(__name__)


SETTLED = ("paid", "void", "uncollectible")


def invoice_record(tenant, stripe_invoice, period: str = "") -> Invoice:
    """Our copy of a Stripe invoice (made or updated)."""
    fields = {
        "number": stripe_invoice.get("number") or "", "status": stripe_invoice.get("status") or "",
        "amount_due": stripe_invoice.get("amount_due") or 0, "amount_paid": stripe_invoice.get("amount_paid") or 0,
        "currency": stripe_invoice.get("currency") or "",
        "hosted_invoice_url": stripe_invoice.get("hosted_invoice_url") or "",
        "invoice_pdf": stripe_invoice.get("invoice_pdf") or "",
    }
    if period:
        fields["period"] = period
    invoice, _ = Invoice.objects.for_tenant(tenant).update_or_create(stripe_id=stripe_invoice["id"], defaults=fields)
    return invoice


def _description(period: str) -> str:
    return f"CloudPACS studies stored up to the end of {period}"


def _existing(tenant, customer_id: str, period: str):
    """The clinic's invoice for this period if one was made (ours, or in Stripe by a run
    that died before recording it): a period is invoiced once."""
    ours = Invoice.objects.for_tenant(tenant).filter(period=period).first()
    if ours is not None:
        return stripe_api.invoice_get(ours.stripe_id)
    for found in stripe_api.invoices_of(customer_id):
        if found.get("description") == _description(period):
            return found
    return None


def invoice_clinic(tenant, *, now=None) -> Invoice | None:
    """Invoice the clinic's charges sent before this month began, once per month."""
    this_month = month_bounds(now or timezone.now())[0]
    due = Charge.objects.for_tenant(tenant).filter(state=Charge.SENT, recorded_at__lt=this_month)
    if not due.exists():
        return None
    period = f"{this_month - timedelta(days=1):%Y-%m}"
    account = customer_ensure(tenant)
    made = _existing(tenant, account.stripe_customer_id, period)
    fresh = made is None
    if fresh:
        made = stripe_api.invoice_create(customer_id=account.stripe_customer_id, description=_description(period),
                                         idempotency_key=f"cloudpacs-invoice-{tenant.uuid}-{period}")
    if made.get("status") == "draft":
        try:
            made = stripe_api.invoice_finalize(made["id"])
        except stripe.StripeError as exc:  # localstripe has no finalize; its `pay` takes drafts
            log.info("invoice %s not finalized (%s); paying it as it is", made["id"], type(exc).__name__)
    items = stripe_api.invoice_item_ids(made["id"])
    with transaction.atomic():
        invoice = invoice_record(tenant, made, period)
        marked = Charge.objects.for_tenant(tenant).filter(state=Charge.SENT, stripe_invoice_item_id__in=items).update(
            state=Charge.INVOICED, stripe_invoice_id=made["id"])
        audit_record(tenant=tenant, actor=grace.SYSTEM, action="billing.invoice_created", obj_type="invoice",
                     obj_id=made["id"], detail={"period": period, "charges": marked,
                                             "amount_due": invoice.amount_due, "currency": invoice.currency})
    # An invoice found again (a run that died, charges it did not take) is not paid again
    # every hour: a declined one is retried when the clinic adds a card.
    return invoice_pay(tenant, invoice) if fresh or invoice.status == "draft" else invoice


def _failed(tenant, invoice: Invoice, reason: str, message: str) -> Invoice:
    with transaction.atomic():
        Invoice.objects.for_tenant(tenant).filter(pk=invoice.pk).update(last_payment_error=message[:500])
        grace.grace_start(grace.account_for_update(tenant), reason, message)
    invoice.refresh_from_db()
    return invoice


def _decline_message(paid) -> str:
    intent = paid.get("payment_intent")
    error = intent.get("last_payment_error") if isinstance(intent, dict) else None
    return ((error or {}).get("message") or "the card was declined")


def invoice_pay(tenant, invoice: Invoice) -> Invoice:
    """Ask Stripe to pay an open invoice from the card on file; a decline starts grace."""
    if invoice.status in SETTLED:
        return invoice
    try:
        paid = stripe_api.invoice_pay(invoice.stripe_id)
    except stripe.CardError as exc:
        return _failed(tenant, invoice, BillingAccount.PAYMENT_FAILED, exc.user_message or "the card was declined")
    except stripe.InvalidRequestError:
        # Paid meanwhile (another run, a webhook), or nothing to pay it with: ask Stripe.
        paid = stripe_api.invoice_get(invoice.stripe_id)
        if paid.get("status") not in SETTLED:
            no_card = not grace.account_get(tenant).has_card
            return _failed(tenant, invoice,
                           BillingAccount.NO_PAYMENT_METHOD if no_card else BillingAccount.PAYMENT_FAILED,
                           "no card on file" if no_card else "Stripe could not charge the card on file")
    with transaction.atomic():
        invoice = invoice_record(tenant, paid)
        if invoice.status in SETTLED:
            _paid(tenant)
    if invoice.status not in SETTLED:  # declined without an error (localstripe answers so)
        return _failed(tenant, invoice, BillingAccount.PAYMENT_FAILED, _decline_message(paid))
    return invoice


def _paid(tenant) -> None:
    """An invoice was settled (paid, or voided or written off by an operator in Stripe):
    a grace for a failed payment ends when no invoice is left open."""
    account = grace.account_for_update(tenant)
    open_left = Invoice.objects.for_tenant(tenant).filter(status="open").exists()
    if not open_left and account.grace_reason == BillingAccount.PAYMENT_FAILED:
        grace.grace_clear(account, "invoices settled")


def invoice_seen(tenant, stripe_invoice) -> Invoice:
    """A webhook's invoice (the caller has checked it is not older than what we have)."""
    with transaction.atomic():
        invoice = invoice_record(tenant, stripe_invoice)
        if invoice.status in SETTLED:
            _paid(tenant)
    return invoice


def pay_open_invoices(tenant) -> None:
    """After a card is added: try the clinic's unpaid invoices again."""
    for invoice in Invoice.objects.for_tenant(tenant).filter(status__in=["open", "draft"]):
        invoice_pay(tenant, invoice)
