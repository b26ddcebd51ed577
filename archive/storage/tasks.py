"""Celery tasks of durable storage. Each takes ids and is safe to run twice; the work itself
lives in this package so commands and tests call the same code. Archiving runs as the
outbox's own task (`outbox.process`), which calls the pipeline's batch handler."""

from celery import shared_task
from django.conf import settings

from archive.outbox.services import outbox_advance
from archive.storage.classes import cold_move
from archive.storage.fixity import fixity_run
from archive.storage.leftovers import leftovers_sweep
from archive.storage.tiers import tier1_evict

# The pipeline's former per-step tasks: a message an older version queued before an
# upgrade still names them. Each now does all of its row's remaining work (outbox_advance);
# retries with backoff as before, and after the last one the outbox sweeper takes over.
_STEP = dict(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(Exception,),
    retry_backoff=2,
    retry_backoff_max=settings.STORAGE_TASK_RETRY_BACKOFF_MAX,
    retry_jitter=True,
    max_retries=settings.STORAGE_TASK_MAX_RETRIES,
)


@shared_task(name="archive.upload_copy", **_STEP)
def upload_copy(outbox_id: int, region: str) -> None:
    outbox_advance(outbox_id)


@shared_task(name="archive.verify_copy", **_STEP)
def verify_copy(outbox_id: int, region: str) -> None:
    outbox_advance(outbox_id)


@shared_task(name="archive.fixity_audit", acks_late=True)
def fixity_audit() -> int:
    """Periodic (beat): re-read copies in both regions, repair bad ones from good ones."""
    return fixity_run().pk


@shared_task(name="archive.evict_tier1", acks_late=True)
def evict_tier1() -> int:
    """Periodic (beat): drop tier-1 files of old instances verified in both regions."""
    return tier1_evict()


@shared_task(name="archive.sweep_leftovers", acks_late=True)
def sweep_leftovers() -> dict:
    """Periodic (beat): remove spool files of ended transfers and tier-1 files no index
    row owns (both left by crashed or killed processes); seal plaintext tier-1 files."""
    return leftovers_sweep().as_dict()


@shared_task(name="archive.storage_cold_move", acks_late=True)
def storage_cold_move() -> dict:
    """Daily (beat): copies past their clinic's cold_after_days move to the cold class."""
    return cold_move()
