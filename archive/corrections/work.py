"""The corrections' outbox work, registered when the app loads."""

from archive.corrections.models import RUNNING, Correction
from archive.corrections.services import CORRECT, correction_apply
from archive.outbox.registry import register


@register(CORRECT)
def correct(row) -> bool:
    correction = Correction.unscoped.select_related("tenant").filter(pk=row.subject_id).first()
    if correction is not None and correction.state == RUNNING:
        correction_apply(correction)  # raises if a region failed: the row is retried
    return True
