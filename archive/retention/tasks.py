"""Celery tasks of the retention app."""

from celery import shared_task


@shared_task(name="archive.deletions_due", acks_late=True)
def deletions_due() -> dict:
    """Periodic (beat): run the cooling-off deletions whose period is over."""
    from archive.retention.deletion import deletions_due_run

    return deletions_due_run()
