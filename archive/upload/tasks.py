from celery import shared_task

from archive.upload.store import uploads_expire


@shared_task(name="archive.expire_uploads", acks_late=True)
def expire_uploads() -> int:
    """Remove browser uploads left unfinished past UPLOAD_EXPIRY_HOURS."""
    return uploads_expire()
