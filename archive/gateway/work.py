"""The gateway's outbox work: storage commitment reports on a new association (the
workers), registered when the app loads."""

from django.conf import settings
from django.utils import timezone

from archive.gateway.commitment import COMMIT, commitment_claim, commitment_outcome, report_to_peer
from archive.gateway.models import StorageCommitment
from archive.outbox.registry import register
from archive.outbox.tasks import process_one


@register(COMMIT)
def commit(row) -> bool:
    """Report a commitment once every instance is decided, unless the gateway is still
    watching for the chance to answer on the request's own association. Until then the
    row looks again after a quarter of its age (2 to 60 s)."""
    commitment = StorageCommitment.unscoped.select_related("tenant").filter(pk=row.subject_id).first()
    if commitment is None or commitment.state == StorageCommitment.REPORTED:
        return True
    age = (timezone.now() - commitment.requested_at).total_seconds()
    if commitment.watched and age < settings.DICOM_COMMIT_WAIT_SECONDS:
        process_one.apply_async((row.pk,), countdown=settings.DICOM_COMMIT_WAIT_SECONDS - age + 1)
        return False
    outcome = commitment_outcome(commitment)
    if not outcome.final or not commitment_claim(commitment):
        process_one.apply_async((row.pk,), countdown=min(60, max(2, age / 4)))
        return False
    report_to_peer(commitment, outcome)  # raises when it could not: the row is retried with backoff
    return True
