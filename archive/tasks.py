"""Celery tasks of the archive. The durable-storage pipeline fills these in."""

from celery import shared_task


@shared_task(name="archive.process_outbox", acks_late=True, reject_on_worker_lost=True)
def process_outbox(outbox_id: int) -> None:
    """Drive one outbox row to completion (archive to both regions). Idempotent."""
    from archive.storage.pipeline import outbox_process

    outbox_process(outbox_id)
