"""Celery tasks of the archive. Each takes ids, does one step, and is safe to run twice;
the work itself lives in archive/storage/ so commands and tests call the same code."""

from celery import shared_task
from django.conf import settings

# Storage steps: late ack (a killed worker's message is redelivered), retries with
# exponential backoff for a region that answers errors or hangs; after the last retry the
# outbox sweeper picks the row up again, so giving up never loses an instance.
_STEP = dict(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(Exception,),
    retry_backoff=2,
    retry_backoff_max=settings.STORAGE_TASK_RETRY_BACKOFF_MAX,
    retry_jitter=True,
    max_retries=settings.STORAGE_TASK_MAX_RETRIES,
)


@shared_task(name="archive.process_outbox", **_STEP)
def process_outbox(outbox_id: int) -> None:
    """Drive one outbox row to completion (archive to both regions). Idempotent."""
    from archive.storage.pipeline import outbox_process

    outbox_process(outbox_id)


@shared_task(name="archive.process_outboxes", **_STEP)
def process_outboxes(outbox_ids: list[int]) -> None:
    """The rows one ingest batch committed: one message for the batch keeps the publishing
    off the request path; each row's steps then go out as their own tasks."""
    from archive.storage.pipeline import outbox_process

    for outbox_id in outbox_ids:
        outbox_process(outbox_id)


@shared_task(name="archive.upload_copy", **_STEP)
def upload_copy(outbox_id: int, region: str) -> None:
    """Archive (primary) or replicate (secondary) one instance's encrypted copy."""
    from archive.storage.pipeline import UPLOAD, step_run

    step_run(outbox_id, UPLOAD, region)


@shared_task(name="archive.verify_copy", **_STEP)
def verify_copy(outbox_id: int, region: str) -> None:
    """Read one region's copy back, decrypt it and check it against the ingest checksum."""
    from archive.storage.pipeline import VERIFY, step_run

    step_run(outbox_id, VERIFY, region)


@shared_task(name="archive.sweep_outbox", acks_late=True)
def sweep_outbox() -> int:
    """Periodic (beat): re-drive outbox rows left idle by a lost message or a dead worker."""
    from archive.storage.pipeline import outbox_sweep

    return outbox_sweep()


@shared_task(name="archive.fixity_audit", acks_late=True)
def fixity_audit() -> int:
    """Periodic (beat): re-read copies in both regions, repair bad ones from good ones."""
    from archive.storage.fixity import fixity_run

    return fixity_run().pk


@shared_task(name="archive.evict_tier1", acks_late=True)
def evict_tier1() -> int:
    """Periodic (beat): drop tier-1 files of old instances verified in both regions."""
    from archive.storage.tiers import tier1_evict

    return tier1_evict()


@shared_task(name="archive.expire_uploads", acks_late=True)
def expire_uploads() -> int:
    """Remove browser uploads left unfinished past UPLOAD_EXPIRY_HOURS."""
    from archive.upload.store import uploads_expire

    return uploads_expire()


@shared_task(name="archive.sweep_leftovers", acks_late=True)
def sweep_leftovers() -> dict:
    """Periodic (beat): remove spool files of ended transfers and tier-1 files no index
    row owns (both left by crashed or killed processes); seal plaintext tier-1 files."""
    from archive.storage.leftovers import leftovers_sweep

    return leftovers_sweep().as_dict()
