"""Deleting a study: one admin requests, a second, different admin approves.

Approval removes the study's index rows in one transaction, leaves a tombstone (UID,
counts, who, why; no other patient data) and audit events, and after commit deletes the
stored objects from tier 1 and both regions (archive/retention/purge.py). Nothing calls
this on a schedule: studies past retention are only ever reported."""

from datetime import date

from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from archive.download.bundle import exports_withdraw
from archive.models import Instance, Patient, Series, Study
from archive.outbox.models import Outbox
from archive.retention.models import DeletionRequest, StudyTombstone
from archive.retention.purge import tombstone_purge_finish
from archive.retention.services import study_retention
from archive.storage.pipeline import ARCHIVE
from tenants.audit import Actor, audit_record
from tenants.models import Invitation, Membership


class DeletionRefused(Exception):
    """The request or approval is not allowed; the message says why, for the user."""


def study_within_retention(*, study: Study, today=None) -> tuple[date, bool]:
    """(retention date, whether the study must still be kept on `today`)."""
    until = study_retention(study=study).retain_until
    return until, until >= (today or timezone.localdate())


def deletion_request_create(*, tenant, study: Study, user, reason: str, override_retention: bool,
                            actor: Actor) -> DeletionRequest:
    reason = (reason or "").strip()
    if not reason:
        raise DeletionRefused("Give a reason for the deletion.")
    keep_until, within = study_within_retention(study=study)
    if within and not override_retention:
        raise DeletionRefused(f"This study must be kept until {keep_until:%Y-%m-%d}. Tick "
                              "“override retention” to request its deletion anyway.")
    with transaction.atomic():
        if DeletionRequest.objects.for_tenant(tenant).filter(study=study, state=DeletionRequest.PENDING).exists():
            raise DeletionRefused("A deletion of this study is already pending.")
        try:
            with transaction.atomic():
                request = DeletionRequest.objects.for_tenant(tenant).create(
                    study=study, study_instance_uid=study.study_instance_uid, reason=reason,
                    override_retention=within, retain_until=keep_until, requested_by=user)
        except IntegrityError:  # another admin requested it a moment ago
            raise DeletionRefused("A deletion of this study is already pending.") from None
        audit_record(tenant=tenant, actor=actor, action="deletion.requested", obj_type="study",
                     obj_id=study.pk, detail={"request": request.pk, "study_uid": study.study_instance_uid,
                                              "override_retention": request.override_retention,
                                              "reason": reason})
    return request


def _pending(tenant, request_id: int) -> DeletionRequest:
    request = (DeletionRequest.objects.for_tenant(tenant).select_for_update()
               .filter(pk=request_id).first())
    if request is None:
        raise DeletionRequest.DoesNotExist
    if request.state != DeletionRequest.PENDING:
        raise DeletionRefused(f"This request is {request.get_state_display().lower()} already.")
    return request


def deletion_request_cancel(*, tenant, request_id: int, user, may_approve: bool, actor: Actor) -> DeletionRequest:
    """The requester, or an admin who could approve, withdraws a pending request."""
    with transaction.atomic():
        request = _pending(tenant, request_id)
        if request.requested_by_id != user.pk and not may_approve:
            raise DeletionRefused("Only the requester or an approving admin can cancel this request.")
        request.state, request.decided_by, request.decided_at = DeletionRequest.CANCELLED, user, timezone.now()
        request.save(update_fields=["state", "decided_by", "decided_at"])
        audit_record(tenant=tenant, actor=actor, action="deletion.cancelled", obj_type="study",
                     obj_id=request.study_id or "", detail={"request": request.pk,
                                                            "study_uid": request.study_instance_uid})
    return request


def deletion_request_approve(*, tenant, request_id: int, user, actor: Actor) -> StudyTombstone:
    """The second admin's approval: remove the study and leave a tombstone."""
    with transaction.atomic():
        request = _pending(tenant, request_id)
        refusal = approval_refusal(tenant=tenant, request=request, user=user)
        if refusal:
            raise DeletionRefused(refusal)
        study = Study.objects.for_tenant(tenant).select_for_update().filter(pk=request.study_id).first()
        if study is None:
            raise DeletionRefused("The study no longer exists.")
        keep_until, within = study_within_retention(study=study)
        if within and not request.override_retention:
            raise DeletionRefused(f"The study must now be kept until {keep_until:%Y-%m-%d} (the policy "
                                  "changed); cancel and request again with “override retention”.")
        now = timezone.now()
        request.state, request.decided_by, request.decided_at = DeletionRequest.APPROVED, user, now
        request.save(update_fields=["state", "decided_by", "decided_at"])
        try:
            with transaction.atomic():
                tombstone = _study_remove(tenant, study, request, user, now)
        except ProtectedError as exc:
            names = sorted({obj._meta.verbose_name_plural for obj in exc.protected_objects})
            raise DeletionRefused(f"The study is still referenced by {', '.join(names)}; "
                                  "remove those first.") from None
        audit_record(tenant=tenant, actor=actor, action="deletion.approved", obj_type="study",
                     obj_id=study.pk, detail={"request": request.pk, "study_uid": study.study_instance_uid,
                                              "override_retention": request.override_retention})
        audit_record(tenant=tenant, actor=actor, action="study.deleted", obj_type="study", obj_id=study.pk,
                     detail={"study_uid": tombstone.study_instance_uid, "tombstone": tombstone.pk,
                             "instances": tombstone.num_instances, "bytes": tombstone.size_bytes,
                             "requested_by": tombstone.requested_by_email, "request": request.pk})
        # The clinic's exports made before may hold the study: no more downloads of them.
        exports_withdraw(tenant=tenant)
        # Objects go only once the rows are gone for good.
        transaction.on_commit(lambda: tombstone_purge_finish(tombstone=tombstone))
    return tombstone


def approval_refusal(*, tenant, request: DeletionRequest, user) -> str | None:
    """Why `user` may not approve `request`, or None. The second admin must be a second
    person, not one the requester made for the purpose: any admin may invite admins, so "a
    different account" alone lets one admin approve their own request with a mailbox they
    control. Hence: not the requester, already a member when the deletion was requested,
    and not joined through an invitation from the requester."""
    if request.requested_by_id == user.pk:
        return "A deletion needs a second admin: you cannot approve your own request."
    membership = Membership.objects.for_tenant(tenant).filter(user=user).first()
    if membership is None or membership.created_at >= request.requested_at:
        return ("You joined this clinic after this deletion was requested, so you cannot "
                "approve it: an admin who was already a member must approve.")
    # Acceptance is recorded on the invitation (accepted_at) for the invitee's email.
    if request.requested_by_id is not None and Invitation.objects.for_tenant(tenant).filter(
            email__iexact=user.email, invited_by_id=request.requested_by_id,
            accepted_at__isnull=False).exists():
        return ("You joined this clinic through an invitation from the admin who requested "
                "this deletion, so you cannot approve it: another admin must.")
    return None


def _study_remove(tenant, study: Study, request: DeletionRequest, approver, now) -> StudyTombstone:
    instances = Instance.objects.for_tenant(tenant).filter(study=study)
    # Locked: a compression swapping an instance's object waits, or finds it gone (and
    # removes its new object); the tombstone then names the objects that exist.
    keys = list(instances.select_for_update().values_list("storage_key", flat=True))
    total = sum(instances.values_list("size_bytes", flat=True))
    requester = request.requested_by
    tombstone = StudyTombstone.objects.for_tenant(tenant).create(
        request=request, study_instance_uid=study.study_instance_uid, num_instances=len(keys),
        size_bytes=total, reason=request.reason, override_retention=request.override_retention,
        retain_until=request.retain_until, requested_by=requester,
        requested_by_email=requester.email if requester else "", approved_by=approver,
        approved_by_email=approver.email, requested_at=request.requested_at, deleted_at=now,
        storage_keys=keys)
    # Per-region copy rows go with their instances (CASCADE), their archive work too; the
    # retention row with the study; requests keep their UID and lose the link.
    Outbox.objects.for_tenant(tenant).filter(kind=ARCHIVE, subject_id__in=instances.values("pk")).delete()
    instances.delete()
    Series.objects.for_tenant(tenant).filter(study=study).delete()
    patient_id = study.patient_id
    study.delete()
    # The patient row holds PHI too: remove it when no study of theirs is left.
    if not Study.objects.for_tenant(tenant).filter(patient_id=patient_id).exists():
        Patient.objects.for_tenant(tenant).filter(pk=patient_id).delete()
    return tombstone
