"""Billing's outbox work and its part of ingest, registered when the app loads."""

from archive.ingest.hooks import on_admission, on_new_studies
from archive.outbox.registry import register
from archive.outbox.tasks import process_one
from billing import grace, stripe_api
from billing.charges import BILL, charge_price, charges_record, seconds_until_settled
from billing.models import Charge
from billing.stripe_push import charge_push, credit_push

on_new_studies(charges_record)
on_admission(grace.upload_refusal)


@register(BILL, batch=True)
def bill(rows) -> dict:
    """Price each row's charge once its study has settled, then send it (Stripe on). A
    charge whose study is still growing is looked at again when it should have settled."""
    charges = {c.pk: c for c in Charge.unscoped.filter(pk__in=[r.subject_id for r in rows])
               .select_related("tenant", "study")}
    results = {}
    for row in rows:
        charge = charges.get(row.subject_id)
        try:
            results[row.pk] = _advance(row, charge)
        except Exception as exc:  # noqa: BLE001 - this row failed; the others go on
            results[row.pk] = exc
    return results


def _advance(row, charge: Charge | None) -> bool:
    if charge is None:
        return True
    if charge.state == Charge.RECORDED:
        wait = seconds_until_settled(charge.study)
        if wait > 0:
            process_one.apply_async((row.pk,), countdown=wait + 1)
            return False
        charge = charge_price(charge)
    if charge.state == Charge.PRICED and stripe_api.enabled():
        charge = charge_push(charge)
    if charge.state == Charge.CREDITED and stripe_api.enabled():
        charge = credit_push(charge)
    # PRICED with Stripe off is done for now: billing.tasks sends it once a key is set.
    return charge.state != Charge.RECORDED
