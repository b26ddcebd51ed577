"""The outbox's task entry points: every kind goes through these."""

import logging

from celery import shared_task

from archive.outbox.services import PROCESS_TASK, outbox_advance, outbox_advance_many, outbox_sweep

log = logging.getLogger(__name__)


@shared_task(name=PROCESS_TASK, acks_late=True, reject_on_worker_lost=True)
def process(outbox_ids: list[int]) -> None:
    """The rows one transaction committed, in one message, advanced together (each kind's
    handler gets its rows at once). A row that fails is retried alone (`process_one`),
    the others go on."""
    for outbox_id, result in outbox_advance_many(outbox_ids).items():
        if isinstance(result, Exception):  # recorded on the row; retried by itself
            log.warning("outbox %s failed (%s); retrying it alone", outbox_id, result)
            process_one.delay(outbox_id)


@shared_task(name="outbox.process_one", acks_late=True, reject_on_worker_lost=True,
             autoretry_for=(Exception,), retry_backoff=2, retry_jitter=True, max_retries=8)
def process_one(outbox_id: int) -> None:
    """One row, with exponential backoff; after the last retry the sweeper picks it up."""
    outbox_advance(outbox_id)


@shared_task(name="outbox.sweep", acks_late=True)
def sweep() -> int:
    """Periodic (beat): re-drive rows left idle by a lost message or a dead worker."""
    return outbox_sweep()
