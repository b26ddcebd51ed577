"""The storage pipeline's outbox handler: given an ARCHIVE row, queue the next step for
its instance, or say it is done. Registered when the storage app loads."""

from archive.models import Instance
from archive.outbox.models import Outbox
from archive.outbox.registry import register
from archive.storage import tasks
from archive.storage.pipeline import ARCHIVE, UPLOAD, next_step


@register(ARCHIVE)
def archive_instance(row: Outbox) -> bool:
    instance = Instance.unscoped.filter(pk=row.subject_id).first()
    if instance is None:  # deleted since (retention): nothing left to do
        return True
    step = next_step(instance)
    if step is None:  # both regions hold a verified copy
        return True
    (tasks.upload_copy if step[0] == UPLOAD else tasks.verify_copy).delay(row.pk, step[1])
    return False
