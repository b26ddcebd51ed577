"""Charges to Stripe: the customer, one invoice item per priced charge, credits.

Every call carries the charge's uuid as idempotency key, and we do not rely on it alone
(Stripe keeps keys for 24 hours; localstripe ignores them): the start of the first push is
committed before the call, and a later push (after a worker was killed between Stripe's
answer and our commit, say) first looks for the item among the customer's pending items,
by the uuid in its metadata. The charge's row lock is held across the call, so two pushes
of one charge (a retry and a sweeper's re-drive) run one after the other."""

import logging

from django.db import transaction
from django.utils import timezone

from billing import grace, stripe_api
from billing.models import BillingAccount, Charge

log = logging.getLogger(__name__)

def customer_ensure(tenant) -> BillingAccount:
    """The clinic's billing account with a Stripe customer (made once, idempotently)."""
    account = grace.account_get(tenant)
    if account.stripe_customer_id:
        return account
    customer_id = stripe_api.customer_create(tenant=tenant, email=account.billing_email)
    BillingAccount.objects.for_tenant(tenant).filter(pk=account.pk, stripe_customer_id="").update(
        stripe_customer_id=customer_id)
    return grace.account_get(tenant)


def _description(charge: Charge) -> str:
    modalities = ", ".join(m for m in charge.modalities.split("\\") if m) or "study"
    return f"Study stored {timezone.localtime(charge.recorded_at):%Y-%m-%d} ({modalities}), ref {charge.uuid}"


def _already_sent(customer_id: str, charge: Charge) -> str:
    for item in stripe_api.pending_items(customer_id):
        if (item.get("metadata") or {}).get("charge") == str(charge.uuid):
            return item["id"]
    return ""


def charge_push(charge: Charge) -> Charge:
    """Send a priced charge to Stripe once; answers the charge as it now is."""
    account = customer_ensure(charge.tenant)
    charges = Charge.objects.for_tenant(charge.tenant)
    with transaction.atomic():
        charge = charges.select_for_update().get(pk=charge.pk)
        if charge.state != Charge.PRICED:
            return charge
        first = charge.first_push_at
        if first is None:  # committed before the call, so a later attempt knows one may have landed
            charge.first_push_at = timezone.now()
            charge.save(update_fields=["first_push_at"])
    # The row lock is held across the call: pushes of one charge run one after the other.
    with transaction.atomic():
        charge = charges.select_for_update().get(pk=charge.pk)
        if charge.state != Charge.PRICED:
            return charge
        # An earlier attempt may have made the item and died before recording it.
        item_id = _already_sent(account.stripe_customer_id, charge) if first is not None else ""
        if not item_id:
            item_id = stripe_api.invoice_item_create(
                customer_id=account.stripe_customer_id, amount=charge.amount, currency=charge.currency,
                description=_description(charge), idempotency_key=charge.idempotency_key,
                metadata={"charge": str(charge.uuid), "clinic": str(charge.tenant.uuid)})
        charge.stripe_invoice_item_id, charge.state, charge.sent_at = item_id, Charge.SENT, timezone.now()
        charge.save(update_fields=["stripe_invoice_item_id", "state", "sent_at"])
    return charge


def credit_push(charge: Charge) -> str:
    """The Stripe side of a credit: a negative invoice item (on the next invoice)."""
    if not stripe_api.enabled() or not charge.amount:
        return ""
    account = customer_ensure(charge.tenant)
    item_id = stripe_api.invoice_item_create(
        customer_id=account.stripe_customer_id, amount=-charge.amount, currency=charge.currency,
        description=f"Credit for {_description(charge)}", idempotency_key=f"cloudpacs-credit-{charge.uuid}",
        metadata={"credit_for": str(charge.uuid), "clinic": str(charge.tenant.uuid)})
    Charge.objects.for_tenant(charge.tenant).filter(pk=charge.pk).update(stripe_credit_item_id=item_id)
    return item_id
