"""Stripe's webhook events: each stored once (its id is unique) before it is acted on.

The event row and what it changes commit together: if acting on it fails, neither is kept,
we answer 500 and Stripe sends it again; a replay of an event we have is answered 200 and
ignored. Events for a customer no clinic has are stored and ignored."""

from django.db import IntegrityError, transaction

from archive.outbox.services import outbox_add
from billing import grace
from billing.cards import card_on_file
from billing.charges import BILL
from billing.invoicing import invoice_record, invoice_seen
from billing.models import BillingAccount, Charge, Invoice, StripeEvent
from tenants.audit import audit_record


def _account_for_customer(customer_id: str | None) -> BillingAccount | None:
    if not customer_id:
        return None
    return BillingAccount.unscoped.select_related("tenant").filter(stripe_customer_id=customer_id).first()


def event_receive(body: dict) -> str:
    """Store and act on a verified event (`body`: the JSON Stripe sent); answers what was done."""
    event_id, kind, obj = body["id"], body["type"], body["data"]["object"]
    created = body.get("created") if isinstance(body.get("created"), int) else 0
    try:
        with transaction.atomic():
            row = StripeEvent.objects.create(event_id=event_id, type=kind, body=body)
            outcome, account = _act(kind, obj, created)
            row.tenant_id = account.tenant_id if account else None
            row.outcome = outcome
            row.save(update_fields=["tenant", "outcome"])
            if account is not None:
                audit_record(tenant=account.tenant, actor=grace.SYSTEM, action="billing.stripe_event",
                             obj_type="stripe_event", obj_id=event_id, detail={"type": kind, "outcome": outcome})
    except IntegrityError:
        if StripeEvent.objects.filter(event_id=event_id).exists():
            return "replayed: ignored"
        raise
    return outcome


INVOICE_EVENTS = ("invoice.paid", "invoice.payment_succeeded", "invoice.payment_failed", "invoice.finalized",
                  "invoice.updated", "invoice.voided", "invoice.marked_uncollectible")


def _act(kind: str, obj, created: int) -> tuple[str, BillingAccount | None]:
    if kind in INVOICE_EVENTS:
        return _invoice_event(kind, obj, created)
    if kind == "payment_method.attached":
        account = _account_for_customer(obj.get("customer"))
        if account is None:
            return "unknown customer: ignored", None
        locked = grace.account_for_update(account.tenant)
        if locked.has_card:  # the card page records a replacement itself, with the card it replaces
            return "card attached; the clinic's card is recorded by the card page", locked
        card_on_file(locked, obj)
        return "card on file", locked
    if kind == "payment_method.detached":
        account = BillingAccount.unscoped.select_related("tenant").filter(payment_method_id=obj.get("id")).first()
        if account is None:
            return "not a clinic's card: ignored", None
        locked = grace.account_for_update(account.tenant)
        for name in ("payment_method_id", "card_brand", "card_last4", "card_exp"):
            setattr(locked, name, "")
        locked.save()
        return "card removed", locked
    if kind == "customer.deleted":
        return _customer_deleted(obj)
    return f"{kind}: not used", None


def _invoice_event(kind: str, obj, created: int) -> tuple[str, BillingAccount | None]:
    account = _account_for_customer(obj.get("customer"))
    if account is None:
        return "unknown customer: ignored", None
    tenant = account.tenant
    ours = Invoice.objects.for_tenant(tenant).select_for_update().filter(stripe_id=obj.get("id")).first()
    if ours is not None and ours.last_event_created and created < ours.last_event_created:
        # Stripe delivers late and out of order: an older event must not undo a newer state.
        return "older than what we have: ignored", account
    if kind == "invoice.payment_failed":
        invoice = invoice_record(tenant, obj)
        error = ((obj.get("last_payment_error") or {}).get("message") or "the card was declined")[:500]
        Invoice.objects.for_tenant(tenant).filter(pk=invoice.pk).update(last_payment_error=error,
                                                                        last_event_created=created)
        if invoice.status in ("paid", "void", "uncollectible"):
            return "payment failed earlier; the invoice is settled", account
        grace.grace_start(grace.account_for_update(tenant), BillingAccount.PAYMENT_FAILED, error)
        return "payment failed: grace started", account
    invoice = invoice_seen(tenant, obj)
    Invoice.objects.for_tenant(tenant).filter(pk=invoice.pk).update(last_event_created=created)
    return f"invoice {obj.get('status') or 'updated'}", account


def _customer_deleted(obj) -> tuple[str, BillingAccount | None]:
    """The clinic's Stripe customer is gone (deleted in the dashboard, say): a new one is
    made when next needed, and charges sent to the old one and not yet invoiced go again."""
    account = _account_for_customer(obj.get("id"))
    if account is None:
        return "unknown customer: ignored", None
    locked = grace.account_for_update(account.tenant)
    for name in ("stripe_customer_id", "payment_method_id", "card_brand", "card_last4", "card_exp"):
        setattr(locked, name, "")
    locked.customer_generation += 1
    locked.save()
    lost = list(Charge.objects.for_tenant(locked.tenant).filter(state=Charge.SENT).values_list("pk", flat=True))
    Charge.objects.for_tenant(locked.tenant).filter(pk__in=lost).update(
        state=Charge.PRICED, stripe_invoice_item_id="", first_push_at=None, sent_at=None)
    if lost:
        outbox_add(tenant=locked.tenant, kind=BILL, subjects=lost)
    return f"customer deleted: {len(lost)} charges go to the next one", locked
