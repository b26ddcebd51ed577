"""A study's one charge: recorded with the study, priced once it has settled, sent once.

- Recorded inside the ingest transaction that created the study row (billing.work): one
  insert, unique per clinic and StudyInstanceUID, so re-sent instances, new series, retries
  and concurrent doors cannot make a second one, and a refused or rolled-back study none.
- Priced by the outbox's `bill` work once nothing has arrived for the study for
  BILLING_SETTLE_SECONDS (a modality sends a study over minutes; its size class and
  modalities are known then), at the price version in effect when it was recorded.
- Sent to Stripe as one invoice item, the charge's uuid as idempotency key (billing.stripe_push)."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from archive.models import Study
from archive.outbox.services import outbox_insert_from
from billing import grace
from billing.models import Charge
from billing.prices import price_in_effect
from cloudpacs.compiled_query import CompiledInsert

log = logging.getLogger(__name__)

BILL = "bill"  # the outbox kind


def charges_record(tenant, studies: list[Study]) -> list[tuple[str, list[int]]]:
    """Inside the ingest transaction: one charge per new study, and the outbox work to
    price and send each (its subject is the charge)."""
    now = timezone.now()
    charges = _charges.insert([_charge(tenant, study, now) for study in studies])
    return [(BILL, [charge.pk for charge in charges])]


def charge_statement(tenant, study: Study) -> tuple[str, list]:
    """charges_record's work for one new study as one statement (archive/ingest/hooks.py):
    the charge's upsert and its BILL row, answering the row's id. The row's subject is the
    key the upsert answers, which is an earlier charge's for a study sent again."""
    charge_sql, charge_params = _charges.statement([_charge(tenant, study, timezone.now())])
    work_sql, work_params = outbox_insert_from(connection, tenant=tenant, kind=BILL, source="charge")
    return f"WITH charge AS ({charge_sql}) {work_sql}", charge_params + work_params


def _charge(tenant, study: Study, now) -> Charge:
    # The study's modalities and size as first stored: what it is priced by if it is
    # deleted before it settles.
    return Charge(tenant=tenant, study=study, study_instance_uid=study.study_instance_uid, recorded_at=now,
                  modalities=study.modalities[:100], size_bytes=study.size_bytes)


# Made with every new study: compiled once (cloudpacs/compiled_query.py). A
# StudyInstanceUID charged before (the study was deleted and is sent again) keeps its one
# charge, linked to the new study row; the database hands back its id, and the work finds
# it done (or prices it, if it was not yet).
_charges = CompiledInsert(Charge, update_conflicts=(["tenant", "study_instance_uid"], ["study"]))


def month_bounds(at):
    """The calendar month (in TIME_ZONE) `at` falls in, as [start, end)."""
    local = timezone.localtime(at)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def seconds_until_settled(study: Study | None) -> float:
    if study is None:  # deleted before it was priced: price what was recorded
        return 0
    quiet = timezone.now() - study.updated_at
    return max(0.0, settings.BILLING_SETTLE_SECONDS - quiet.total_seconds())


def charge_price(charge: Charge) -> Charge:
    """Fix the charge's amount (once). Within the month's free allowance, or at a zero
    price, it is FREE and never sent. The clinic's billing account row is locked so two
    workers pricing at once cannot both take the month's last free study."""
    with transaction.atomic():
        account = grace.account_for_update(charge.tenant)
        charge = Charge.objects.for_tenant(charge.tenant).select_for_update().get(pk=charge.pk)
        if charge.state != Charge.RECORDED:
            return charge
        study = Study.objects.for_tenant(charge.tenant).filter(pk=charge.study_id).first()
        price = price_in_effect(tenant=charge.tenant, at=charge.recorded_at)
        charge.modalities = study.modalities if study else charge.modalities
        charge.size_bytes = study.size_bytes if study else (charge.size_bytes or 0)
        charge.priced_at = timezone.now()
        if price is None:
            log.warning("clinic %s has no price in effect: its study is not charged", charge.tenant_id)
            charge.amount, charge.currency, charge.state = 0, "", Charge.FREE
        else:
            charge.price, charge.currency = price, price.currency
            charge.amount = price.amount_for(modalities=charge.modality_list, size_bytes=charge.size_bytes)
            if charge.amount and _allowance_left(charge, price):
                charge.amount, charge.within_allowance = 0, True
            charge.state = Charge.PRICED if charge.amount else Charge.FREE
        charge.save()
        if charge.state == Charge.PRICED:
            grace.on_charge_due(account)
    return charge


def _allowance_left(charge: Charge, price) -> bool:
    """Is one of this month's free studies left (the caller holds the account's lock)?
    Studies priced at zero do not use one."""
    start, end = month_bounds(charge.recorded_at)
    used = Charge.objects.for_tenant(charge.tenant).filter(
        recorded_at__gte=start, recorded_at__lt=end, within_allowance=True).count()
    return used < price.free_studies_per_month


def period_summary(*, tenant, at=None) -> dict:
    """This month's charges of a clinic: counts and the running total (priced or sent)."""
    start, end = month_bounds(at or timezone.now())
    month = Charge.objects.for_tenant(tenant).filter(recorded_at__gte=start, recorded_at__lt=end)
    billed = month.filter(state__in=[Charge.PRICED, Charge.SENT, Charge.INVOICED])
    totals = {row["currency"]: row["total"] for row in billed.values("currency").annotate(total=Sum("amount"))}
    return {"start": start, "end": end, "studies": month.count(), "free": month.filter(state=Charge.FREE).count(),
            "pending": month.filter(state=Charge.RECORDED).count(), "billed": billed.count(), "totals": totals}


def upcoming_total(*, tenant) -> dict:
    """What the next invoice holds so far: charges priced or sent and not yet invoiced."""
    rows = (Charge.objects.for_tenant(tenant).filter(state__in=[Charge.PRICED, Charge.SENT])
            .values("currency").annotate(total=Sum("amount")))
    return {row["currency"]: row["total"] for row in rows}

