"""Celery tasks of clinic exports (archive/download/bundle.py)."""

from celery import shared_task

from archive.download import bundle


@shared_task(name=bundle.BUILD_TASK, acks_late=True)
def export_build(export_id: int) -> None:
    bundle.export_build(export_id)


@shared_task(name="archive.exports_expire", acks_late=True)
def exports_expire() -> int:
    """Hourly (beat): remove the zips of expired exports."""
    return bundle.exports_expire()
