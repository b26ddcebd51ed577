"""Celery tasks of the corrections app."""

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone

log = logging.getLogger(__name__)


def corrections_orphaned_requeue(now=None) -> int:
    """Corrections left applying or reverting with no outbox row to do it: a row marked done
    by a worker of an older release (which knew no revert), or lost. Each gets a new row,
    so it finishes (or fails, audited) instead of blocking its study's corrections for good.
    Returns how many."""
    from archive.corrections.models import REVERTING, RUNNING, Correction
    from archive.corrections.services import CORRECT
    from archive.outbox.models import Outbox
    from archive.outbox.services import outbox_add

    now = now or timezone.now()
    quiet = now - timedelta(seconds=settings.STORAGE_SWEEP_IDLE_SECONDS)
    open_rows = Outbox.unscoped.filter(kind=CORRECT, subject_id=OuterRef("pk"), done_at=None)
    recent_rows = Outbox.unscoped.filter(kind=CORRECT, subject_id=OuterRef("pk"), done_at__gt=quiet)
    orphans = list(Correction.unscoped.select_related("tenant").filter(state__in=[RUNNING, REVERTING])
                   .filter(~Exists(open_rows), ~Exists(recent_rows), created_at__lt=quiet))
    for correction in orphans:
        log.warning("correction %s was left %s with no work queued: queued again", correction.pk, correction.state)
        outbox_add(tenant=correction.tenant, kind=CORRECT, subjects=[correction.pk])
    return len(orphans)


@shared_task(name="archive.corrections_orphaned", acks_late=True)
def corrections_orphaned() -> int:
    """Periodic (beat): see corrections_orphaned_requeue."""
    return corrections_orphaned_requeue()
