"""The corrections' outbox work, registered when the app loads."""

from archive.corrections.models import REVERTING, RUNNING, Correction
from archive.corrections.services import (
    CORRECT,
    correction_apply,
    correction_failed,
    revert_apply,
    revert_failed,
)
from archive.outbox.registry import register
from tenants.audit import Actor

# A correction (or a revert) that fails this many times (an image pydicom cannot write
# back, a region refusing for long) is given up, audited, and no longer blocks its study.
MAX_ATTEMPTS = 5


@register(CORRECT)
def correct(row) -> bool:
    """A correction to apply (RUNNING) or to revert (REVERTING)."""
    correction = Correction.unscoped.select_related("tenant").filter(pk=row.subject_id).first()
    if correction is None or correction.state not in (RUNNING, REVERTING):
        return True
    reverting = correction.state == REVERTING
    try:
        (revert_apply if reverting else correction_apply)(correction)
    except Exception as exc:
        if row.attempts + 1 < MAX_ATTEMPTS:
            raise  # the row is retried
        why = f"gave up after {MAX_ATTEMPTS} attempts ({type(exc).__name__})"
        if reverting:
            revert_failed(correction, Actor(*correction.params["revert_actor"]), why)
        else:
            correction_failed(correction, Actor(*correction.params["actor"]), why)
    return True
