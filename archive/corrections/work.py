"""The corrections' outbox work, registered when the app loads."""

from archive.corrections.models import RUNNING, Correction
from archive.corrections.services import CORRECT, correction_apply, correction_failed
from archive.outbox.registry import register
from tenants.audit import Actor

# A correction that fails this many times (an image pydicom cannot write back, a region
# refusing for long) is given up, audited, and no longer blocks its study.
MAX_ATTEMPTS = 5


@register(CORRECT)
def correct(row) -> bool:
    correction = Correction.unscoped.select_related("tenant").filter(pk=row.subject_id).first()
    if correction is None or correction.state != RUNNING:
        return True
    try:
        correction_apply(correction)
    except Exception as exc:
        if row.attempts + 1 < MAX_ATTEMPTS:
            raise  # the row is retried
        correction_failed(correction, Actor(*correction.params["actor"]),
                          f"gave up after {MAX_ATTEMPTS} attempts ({type(exc).__name__})")
    return True
