"""Billing's outbox work and its part of ingest, registered when the app loads."""

from archive.corrections.hooks import on_studies_merged
from archive.ingest.hooks import on_admission, on_new_studies
from archive.outbox.registry import register
from archive.outbox.tasks import process
from billing import grace, stripe_api
from billing.charges import BILL, charge_price, charges_record, seconds_until_settled
from billing.credits import charge_credit
from billing.models import Charge
from billing.stripe_push import charge_push, credit_push

on_new_studies(charges_record)
on_admission(grace.upload_refusal)


@on_studies_merged
def merged(tenant, *, merged_uid: str, into_uid: str, actor) -> None:
    """A study merged into another is one study: its own charge is credited (never sent, if
    it was not yet), so the clinic pays for the merged study once."""
    charge = Charge.objects.for_tenant(tenant).filter(study_instance_uid=merged_uid).first()
    if charge is not None and charge.state not in (Charge.CREDITED, Charge.FREE):
        charge_credit(charge=charge, reason=f"merged into study {into_uid}", actor=actor)


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
