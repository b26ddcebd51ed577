"""Charges to Stripe: the customer, one invoice item per priced charge, credits.

Every call carries the charge's uuid as idempotency key, and we do not rely on it alone
(Stripe keeps keys for 24 hours; localstripe ignores them): the start of the first push is
committed before the call, and a later push (after a worker was killed between Stripe's
answer and our commit, say) first looks for the item among the customer's pending items,
by the uuid in its metadata. The charge's row lock is held across the call, so two pushes
of one charge (a retry and a sweeper's re-drive) run one after the other."""

from django.db import transaction
from django.utils import timezone

from billing import grace, stripe_api
from billing.models import BillingAccount, Charge


def customer_ensure(tenant) -> BillingAccount:
    """The clinic's billing account with a Stripe customer (made once, idempotently)."""
    account = grace.account_get(tenant)
    if account.stripe_customer_id:
        return account
    customer_id = stripe_api.customer_create(tenant=tenant, email=account.billing_email,
                                             generation=account.customer_generation)
    BillingAccount.objects.for_tenant(tenant).filter(pk=account.pk, stripe_customer_id="").update(
        stripe_customer_id=customer_id)
    return grace.account_get(tenant)


def _description(charge: Charge) -> str:
    modalities = ", ".join(charge.modality_list) or "study"
    return f"Study stored {timezone.localtime(charge.recorded_at):%Y-%m-%d} ({modalities}), ref {charge.uuid}"


def _item_for(customer_id: str, key: str, value: str) -> str:
    """The customer's pending invoice item whose metadata `key` is `value`, if any."""
    for item in stripe_api.pending_items(customer_id):
        if (item.get("metadata") or {}).get(key) == value:
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
        customer = account.stripe_customer_id
        item_id = _item_for(customer, "charge", str(charge.uuid)) if first is not None else ""
        if not item_id:
            item_id = stripe_api.invoice_item_create(
                customer_id=customer, amount=charge.amount, currency=charge.currency,
                description=_description(charge), idempotency_key=charge.idempotency_key(customer),
                metadata={"charge": str(charge.uuid), "clinic": str(charge.tenant.uuid)})
        charge.stripe_invoice_item_id, charge.state, charge.sent_at = item_id, Charge.SENT, timezone.now()
        charge.save(update_fields=["stripe_invoice_item_id", "state", "sent_at"])
    return charge


def credit_push(charge: Charge) -> Charge:
    """The Stripe side of a credited charge, once: a negative invoice item (on the next
    invoice) if Stripe has the charge's item, whether or not we recorded it (a push that
    died after Stripe answered)."""
    account = customer_ensure(charge.tenant)
    customer = account.stripe_customer_id
    with transaction.atomic():
        charge = Charge.objects.for_tenant(charge.tenant).select_for_update().get(pk=charge.pk)
        if charge.state != Charge.CREDITED or charge.stripe_credit_item_id or not charge.amount:
            return charge
        billed = charge.stripe_invoice_item_id or (
            _item_for(customer, "charge", str(charge.uuid)) if charge.first_push_at else "")
        if not billed:
            return charge  # Stripe never had it: nothing to give back
        credit = _item_for(customer, "credit_for", str(charge.uuid)) or stripe_api.invoice_item_create(
            customer_id=customer, amount=-charge.amount, currency=charge.currency,
            description=f"Credit for {_description(charge)}", idempotency_key=f"cloudpacs-credit-{charge.uuid}",
            metadata={"credit_for": str(charge.uuid), "clinic": str(charge.tenant.uuid)})
        charge.stripe_credit_item_id = credit
        charge.save(update_fields=["stripe_credit_item_id"])
    return charge
