"""Isolation-walker samples for the retention and deletion URLs (merged into
tests/archive/isolation_samples.py)."""

from tenants import roles
from tenants.models import Membership, User
from tests.archive.study_rows import make_study
from tests.conftest import PASSWORD


def _study(victim):
    study = make_study(victim, name="Victimova^Retenta", patient_id="VICTIM-RET-77", study_date="19990101")
    return {"pk": study.pk}, ["Victimova", "VICTIM-RET-77", study.study_instance_uid]


def _pending_request(victim):
    from archive.retention.models import DeletionRequest

    study = make_study(victim, name="Victimova^Deleta", patient_id="VICTIM-DEL-77", study_date="19990101")
    admin = User.objects.create_user(f"victim-admin-{study.pk}@victim.test", PASSWORD)
    Membership.objects.for_tenant(victim).create(user=admin, role=roles.ADMIN)
    request = DeletionRequest.objects.for_tenant(victim).create(
        study=study, study_instance_uid=study.study_instance_uid, reason="Victim-secret-reason",
        requested_by=admin)
    return {"request_id": request.pk}, ["Victimova", "VICTIM-DEL-77", study.study_instance_uid,
                                        "Victim-secret-reason", admin.email]


def _tombstone(victim):
    from django.utils import timezone

    from archive.retention.models import DeletionRequest, StudyTombstone

    request = DeletionRequest.objects.for_tenant(victim).create(
        study=None, study_instance_uid="2.25.777000111", reason="Victim-tomb-reason",
        state=DeletionRequest.APPROVED)
    tomb = StudyTombstone.objects.for_tenant(victim).create(
        request=request, study_instance_uid="2.25.777000111", num_instances=1, size_bytes=10,
        reason="Victim-tomb-reason", requested_at=timezone.now(), storage_keys=[f"{victim.pk}/deadbeef"])
    return {"tombstone_id": tomb.pk}, ["2.25.777000111", "Victim-tomb-reason"]


SAMPLES = {
    "archive:study_delete_request": _study,
    "archive:deletion_approve": _pending_request,
    "archive:deletion_cancel": _pending_request,
    "archive:tombstone_purge": _tombstone,
}
