"""Credits: an operator gives a charge back (a study deleted as sent in error, say).
Nothing is refunded automatically; each credit is audited in the clinic's log."""

from django.db import transaction
from django.utils import timezone

from archive.outbox.services import outbox_add
from billing.charges import BILL
from billing.models import Charge
from tenants.audit import Actor, audit_record


def charge_credit(*, charge: Charge, reason: str, actor: Actor) -> Charge:
    """Credit a charge once. Its outbox work gives Stripe a negative invoice item if Stripe
    has the charge (so the next invoice is lower), with retries; one not sent is never sent."""
    with transaction.atomic():
        charge = Charge.objects.for_tenant(charge.tenant).select_for_update().get(pk=charge.pk)
        if charge.state == Charge.CREDITED:
            return charge
        was = charge.state
        charge.state, charge.credited_at, charge.credit_reason = Charge.CREDITED, timezone.now(), reason[:500]
        charge.save(update_fields=["state", "credited_at", "credit_reason"])
        audit_record(tenant=charge.tenant, actor=actor, action="billing.charge_credited", obj_type="charge",
                     obj_id=str(charge.uuid), detail={"amount": charge.amount, "currency": charge.currency,
                                                      "was": was, "reason": reason[:200]})
        outbox_add(tenant=charge.tenant, kind=BILL, subjects=[charge.pk])
    return charge
