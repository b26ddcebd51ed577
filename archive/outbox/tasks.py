"""The outbox's task entry points: every kind goes through these."""

import logging

from celery import shared_task

from archive.outbox.services import PROCESS_TASK, outbox_advance, outbox_sweep

log = logging.getLogger(__name__)


@shared_task(name=PROCESS_TASK, acks_late=True, reject_on_worker_lost=True)
def process(outbox_ids: list[int]) -> None:
    """The rows one transaction committed, in one message. Each row is advanced on its
    own: one that fails is retried alone (`process_one`), the others go on."""
    for outbox_id in outbox_ids:
        try:
            outbox_advance(outbox_id)
        except Exception:  # noqa: BLE001 - recorded on the row; retried by itself
            log.warning("outbox %s failed; retrying it alone", outbox_id, exc_info=True)
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
