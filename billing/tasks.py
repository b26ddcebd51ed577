"""Periodic billing work (beat): send what Stripe has not had yet, invoice past months."""

import logging

from celery import shared_task
from django.db.models import Exists, OuterRef

from archive.outbox.models import Outbox
from archive.outbox.services import outbox_add
from billing import stripe_api
from billing.charges import BILL
from billing.invoicing import invoice_clinic
from billing.models import Charge
from tenants.models import Tenant

log = logging.getLogger(__name__)


@shared_task(name="billing.send_unsent", acks_late=True)
def send_unsent() -> int:
    """Charges priced while Stripe was off (or whose work was lost) go through the outbox
    again once a key is configured; each is still sent once (its idempotency key)."""
    if not stripe_api.enabled():
        return 0
    queued = Outbox.unscoped.filter(kind=BILL, subject_id=OuterRef("pk"), done_at=None)
    waiting = (Charge.unscoped.filter(state=Charge.PRICED).annotate(queued=Exists(queued))
               .filter(queued=False).values_list("tenant_id", "pk"))
    by_clinic: dict[int, list[int]] = {}
    for tenant_id, pk in waiting[:5000]:
        by_clinic.setdefault(tenant_id, []).append(pk)
    for tenant_id, pks in by_clinic.items():
        outbox_add(tenant=Tenant.objects.get(pk=tenant_id), kind=BILL, subjects=pks)
    return sum(len(pks) for pks in by_clinic.values())


@shared_task(name="billing.invoice_month", acks_late=True)
def invoice_month() -> int:
    """Hourly; invoices each clinic once per month for the charges sent before it began."""
    if not stripe_api.enabled():
        return 0
    made = 0
    # order_by(): without it the model's ordering joins the DISTINCT (one row per charge).
    clinics = Charge.unscoped.filter(state=Charge.SENT).order_by().values_list("tenant_id", flat=True).distinct()
    for tenant_id in clinics:
        tenant = Tenant.objects.get(pk=tenant_id)
        try:
            made += invoice_clinic(tenant) is not None
        except Exception:  # noqa: BLE001 - one clinic's failure must not stop the others
            log.warning("invoicing clinic %s failed; the next run retries", tenant_id, exc_info=True)
    return made
