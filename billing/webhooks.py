"""Stripe's webhook events: each stored once (its id is unique) before it is acted on.

The event row and what it changes commit together: if acting on it fails, neither is kept,
we answer 500 and Stripe sends it again; a replay of an event we have is answered 200 and
ignored. Events for a customer no clinic has are stored and ignored."""

import logging

from django.db import IntegrityError, transaction

from billing import grace
from billing.invoicing import invoice_paid_seen, invoice_record
from billing.models import BillingAccount, Invoice, StripeEvent
from tenants.audit import audit_record

log = logging.getLogger(__name__)


def _account_for_customer(customer_id: str | None) -> BillingAccount | None:
    if not customer_id:
        return None
    return BillingAccount.unscoped.select_related("tenant").filter(stripe_customer_id=customer_id).first()


def _card_fields(payment_method) -> dict:
    card = payment_method.get("card") or {}
    month, year = card.get("exp_month"), card.get("exp_year")
    return {"payment_method_id": payment_method.get("id") or "", "card_brand": (card.get("brand") or "")[:30],
            "card_last4": (card.get("last4") or "")[:4],
            "card_exp": f"{int(month):02d}/{year}" if month and year else ""}


def card_on_file(account: BillingAccount, payment_method) -> None:
    """Record the card as the clinic's payment method; it ends a grace for lack of one."""
    for name, value in _card_fields(payment_method).items():
        setattr(account, name, value)
    account.save()
    if account.grace_reason == BillingAccount.NO_PAYMENT_METHOD:
        grace.grace_clear(account, "payment method added")


def event_receive(body: dict) -> tuple[str, BillingAccount | None]:
    """Store and act on a verified event (`body`: the JSON Stripe sent); answers (outcome,
    the account a card was added to, for the caller to retry its unpaid invoices)."""
    event_id, kind, obj = body["id"], body["type"], body["data"]["object"]
    try:
        with transaction.atomic():
            row = StripeEvent.objects.create(event_id=event_id, type=kind, body=body)
            outcome, account, card_added = _act(kind, obj)
            row.tenant_id = account.tenant_id if account else None
            row.outcome = outcome
            row.save(update_fields=["tenant", "outcome"])
            if account is not None:
                audit_record(tenant=account.tenant, actor=grace.SYSTEM, action="billing.stripe_event",
                             obj_type="stripe_event", obj_id=event_id, detail={"type": kind, "outcome": outcome})
    except IntegrityError:
        if StripeEvent.objects.filter(event_id=event_id).exists():
            return "replayed: ignored", None
        raise
    return outcome, (account if card_added else None)


def _act(kind: str, obj) -> tuple[str, BillingAccount | None, bool]:
    if kind in ("invoice.paid", "invoice.payment_succeeded", "invoice.payment_failed", "invoice.finalized",
                "invoice.updated", "invoice.voided"):
        account = _account_for_customer(obj.get("customer"))
        if account is None:
            return "unknown customer: ignored", None, False
        if kind == "invoice.payment_failed":
            invoice = invoice_record(account.tenant, obj)
            error = ((obj.get("last_payment_error") or {}).get("message") or "the card was declined")[:500]
            Invoice.objects.for_tenant(account.tenant).filter(pk=invoice.pk).update(last_payment_error=error)
            grace.grace_start(grace.account_for_update(account.tenant), BillingAccount.PAYMENT_FAILED, error)
            return "payment failed: grace started", account, False
        invoice_paid_seen(account.tenant, obj)
        return f"invoice {obj.get('status') or 'updated'}", account, False
    if kind == "payment_method.attached":
        account = _account_for_customer(obj.get("customer"))
        if account is None:
            return "unknown customer: ignored", None, False
        locked = grace.account_for_update(account.tenant)
        card_on_file(locked, obj)
        return "card on file", locked, True
    if kind == "payment_method.detached":
        account = BillingAccount.unscoped.select_related("tenant").filter(payment_method_id=obj.get("id")).first()
        if account is None:
            return "not a clinic's card: ignored", None, False
        locked = grace.account_for_update(account.tenant)
        for name in ("payment_method_id", "card_brand", "card_last4", "card_exp"):
            setattr(locked, name, "")
        locked.save()
        return "card removed", locked, False
    if kind == "customer.deleted":
        account = _account_for_customer(obj.get("id"))
        if account is None:
            return "unknown customer: ignored", None, False
        locked = grace.account_for_update(account.tenant)
        for name in ("stripe_customer_id", "payment_method_id", "card_brand", "card_last4", "card_exp"):
            setattr(locked, name, "")
        locked.save()
        return "customer deleted: a new one is made when next needed", locked, False
    return f"{kind}: not used", None, False
