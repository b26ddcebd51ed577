"""Billing's outbox work and its part of ingest, registered when the app loads."""

from archive.corrections.hooks import on_studies_merged, on_studies_unmerged
from archive.ingest.hooks import on_admission, on_new_studies
from archive.outbox.registry import register
from archive.outbox.services import outbox_add
from archive.outbox.tasks import process
from billing import grace, stripe_api
from billing.charges import (
    BILL,
    charge_price,
    charge_statement,
    charges_record,
    seconds_until_settled,
)
from billing.credits import charge_credit
from billing.models import Charge
from billing.stripe_push import charge_push, credit_push
from tenants.audit import audit_record

on_new_studies(charges_record, statement=charge_statement)
on_admission(grace.upload_refusal)


MERGED = "merged into study"  # the credit reason a revert of the merge recognises


@on_studies_merged
def merged(tenant, *, merged_uid: str, into_uid: str, actor) -> None:
    """A study merged into another is one study: its own charge is credited (never sent, if
    it was not yet), so the clinic pays for the merged study once."""
    charge = Charge.objects.for_tenant(tenant).filter(study_instance_uid=merged_uid).first()
    if charge is not None and charge.state not in (Charge.CREDITED, Charge.FREE):
        charge_credit(charge=charge, reason=f"{MERGED} {into_uid}", actor=actor)


@on_studies_unmerged
def unmerged(tenant, *, study_uid: str, actor) -> None:
    """A merge reverted: the study is one of two again, and billed as such. Its credit is
    taken back unless Stripe has it already (then the clinic keeps it, and the log says so)."""
    charge = (Charge.objects.for_tenant(tenant).select_for_update()
              .filter(study_instance_uid=study_uid, state=Charge.CREDITED, credit_reason__startswith=MERGED).first())
    if charge is None:
        return
    if charge.stripe_credit_item_id:
        audit_record(tenant=tenant, actor=actor, action="billing.credit_kept", obj_type="charge",
                     obj_id=str(charge.uuid), detail={"reason": "the merge was reverted after Stripe had the credit"})
        return
    charge.state = Charge.SENT if charge.stripe_invoice_item_id else Charge.RECORDED
    charge.credited_at, charge.credit_reason = None, ""
    charge.save(update_fields=["state", "credited_at", "credit_reason"])
    audit_record(tenant=tenant, actor=actor, action="billing.charge_restored", obj_type="charge",
                 obj_id=str(charge.uuid), detail={"reason": "merge reverted", "state": charge.state})
    outbox_add(tenant=tenant, kind=BILL, subjects=[charge.pk])


@register(BILL, batch=True)
def bill(rows) -> dict:
    """Price each row's charge once its study has settled, then send it (Stripe on). The
    charges whose studies are still growing are looked at again together, in one message,
    when the last of them should have settled (a message each cost a one-image study more
    worker time than archiving it)."""
    charges = {c.pk: c for c in Charge.unscoped.filter(pk__in=[r.subject_id for r in rows])
               .select_related("tenant", "study")}
    results, waits = {}, {}
    for row in rows:
        charge = charges.get(row.subject_id)
        try:
            wait = seconds_until_settled(charge.study) if charge and charge.state == Charge.RECORDED else 0
            if wait > 0:
                waits[row.pk], results[row.pk] = wait, False
            else:
                results[row.pk] = _advance(charge)
        except Exception as exc:  # noqa: BLE001 - this row failed; the others go on
            results[row.pk] = exc
    if waits:
        process.apply_async((sorted(waits),), countdown=max(waits.values()) + 1)
    return results


def _advance(charge: Charge | None) -> bool:
    if charge is None:
        return True
    if charge.state == Charge.RECORDED:
        charge = charge_price(charge)
    if charge.state == Charge.PRICED and stripe_api.enabled():
        charge = charge_push(charge)
    if charge.state == Charge.CREDITED and stripe_api.enabled():
        charge = credit_push(charge)
    # PRICED with Stripe off is done for now: billing.tasks sends it once a key is set.
    return charge.state != Charge.RECORDED
