"""Deleting a study: one admin requests, a second, different admin approves.

A clinic with no second admin who could approve (a practice run by one) gets a cooling-off
period instead: the request waits DELETION_COOLING_OFF_DAYS, every member who may delete is
emailed and may cancel it, and a beat task (archive.deletions_due) runs it once the period
is over, checking the retention rules again then.

Approval removes the study's index rows in one transaction, leaves a tombstone (UID,
counts, who, why; no other patient data) and audit events, and after commit deletes the
stored objects from tier 1 and both regions (archive/retention/purge.py). Studies past
retention are only ever reported: nothing deletes a study that nobody asked to delete."""

import logging
from datetime import date, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from archive.corrections.models import HeaderVersion
from archive.download.bundle import exports_withdraw
from archive.models import Instance, Patient, Series, Study
from archive.outbox.models import Outbox
from archive.retention.models import DeletionRequest, StudyTombstone
from archive.retention.purge import tombstone_purge_finish
from archive.retention.services import study_retention
from archive.storage.pipeline import ARCHIVE
from cloudpacs.mail import secret_links_mailable
from tenants.audit import Actor, AuditEvent, audit_record
from tenants.models import Invitation, Membership
from tenants.roles import ROLE_PERMISSIONS

log = logging.getLogger("cloudpacs.retention")
COOLING_OFF = Actor.system("deletion cooling-off")


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
        # Always a full period from now: a request cancelled and made again starts afresh.
        runs_after = (None if second_approver_exists(tenant=tenant, requester=user)
                      else timezone.now() + timedelta(days=settings.DELETION_COOLING_OFF_DAYS))
        if runs_after is not None:
            refusal = cooling_off_refusal(tenant)
            if refusal:
                raise DeletionRefused(refusal)
        try:
            with transaction.atomic():
                request = DeletionRequest.objects.for_tenant(tenant).create(
                    study=study, study_instance_uid=study.study_instance_uid, reason=reason,
                    override_retention=within, retain_until=keep_until, requested_by=user,
                    runs_after=runs_after)
        except IntegrityError:  # another admin requested it a moment ago
            raise DeletionRefused("A deletion of this study is already pending.") from None
        detail = {"request": request.pk, "study_uid": study.study_instance_uid,
                  "override_retention": request.override_retention, "reason": reason}
        if runs_after is not None:
            detail["runs_after"] = runs_after.isoformat()
        audit_record(tenant=tenant, actor=actor, action="deletion.requested", obj_type="study",
                     obj_id=study.pk, detail=detail)
        if runs_after is not None:
            transaction.on_commit(lambda: _cooling_off_notify(tenant=tenant, request=request, study=study))
    return request


def second_approver_exists(*, tenant, requester) -> bool:
    """Whether another member could approve a request `requester` makes now, by
    approval_refusal's rules: an active member with the approve permission, not joined
    through the requester's own invitation."""
    invited = {email.lower() for email in Invitation.objects.for_tenant(tenant).filter(
        invited_by=requester, accepted_at__isnull=False).values_list("email", flat=True)}
    members = Membership.objects.for_tenant(tenant).select_related("user").exclude(user=requester)
    return any(m.can("archive.delete_approve") and m.user.is_active and m.user.email.lower() not in invited
               for m in members)


def cooling_off_refusal(tenant) -> str | None:
    """Why the one-admin path is not open now, or None. Its safeguard is that everyone who
    could object hears of it: so not while no email can carry the notice, and not right after
    an admin who could have approved was removed or demoted (one admin would otherwise clear
    the others away, then delete alone)."""
    if not secret_links_mailable():
        return ("Email is not set up, so nobody could be told of this deletion and cancel it: it "
                "needs a second admin to approve it.")
    since = timezone.now() - timedelta(days=settings.DELETION_COOLING_OFF_DAYS)
    events = AuditEvent.objects.for_tenant(tenant).filter(
        action__in=("member.removed", "member.role_changed"), created_at__gte=since).values_list("action", "detail")
    approvers = {r for r, permissions in ROLE_PERMISSIONS.items() if "archive.delete_approve" in permissions}
    for action, detail in events:
        was = (detail or {}).get("role" if action == "member.removed" else "from")
        now = (detail or {}).get("to")
        if was in approvers and now not in approvers:
            return ("An admin who could have approved this deletion was removed or demoted recently: a "
                    f"one-admin deletion is open again {settings.DELETION_COOLING_OFF_DAYS} days after that. "
                    "Until then, a second admin approves it.")
    return None


def deleters(tenant) -> list:
    """Active members who may request or approve deletions: who hears of a cooling-off
    request, and who may cancel it."""
    return [m.user for m in Membership.objects.for_tenant(tenant).select_related("user").order_by("user__email")
            if m.user.is_active and (m.can("archive.delete_request") or m.can("archive.delete_approve"))]


def _cooling_off_notify(*, tenant, request: DeletionRequest, study: Study) -> None:
    """Email each member who may cancel. No patient data in the email (mail is not
    encrypted): the study's UID, date and modalities, and where to cancel."""
    page = settings.SITE_URL.rstrip("/") + f"/t/{tenant.slug}/deletions/"
    requester = request.requested_by.email if request.requested_by else "an admin"
    body = (f"{requester} asked to delete a study of {tenant.name} on CloudPACS:\n\n"
            f"  Study Instance UID {request.study_instance_uid}\n"
            f"  study date {study.study_date or 'unknown'}, {study.modalities or 'no modality'}\n\n"
            f"It will be deleted for good on {request.runs_after:%Y-%m-%d %H:%M} UTC unless someone cancels it.\n"
            f"To see the request or cancel it: {page}\n")
    for user in deleters(tenant):
        try:
            send_mail(f"A study of {tenant.name} will be deleted on {request.runs_after:%Y-%m-%d}", body, None,
                      [user.email], fail_silently=False)
        except Exception as exc:  # noqa: BLE001 - the request stands; the page shows it to all
            log.warning("deletion request %s: notice to user_id=%s not sent (%s)", request.pk, user.pk,
                        type(exc).__name__)


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
        # A cooling-off request is anyone's to stop who may delete: that is its safeguard.
        if request.requested_by_id != user.pk and not may_approve and not (
                request.cooling_off and any(u.pk == user.pk for u in deleters(tenant))):
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
        return _execute(tenant=tenant, request=request, user=user, actor=actor, action="deletion.approved")


def deletion_request_run(*, tenant, request_id: int, now=None) -> StudyTombstone:
    """A cooling-off request whose period is over runs as if approved, by nobody; the
    retention rules are checked again as for an approval."""
    with transaction.atomic():
        request = _pending(tenant, request_id)
        if not request.cooling_off or request.runs_after > (now or timezone.now()):
            raise DeletionRefused("This request's cooling-off period is not over.")
        return _execute(tenant=tenant, request=request, user=None, actor=COOLING_OFF,
                        action="deletion.cooling_off_ended")


def deletions_due_run(now=None) -> dict:
    """Beat task's body: run every cooling-off request whose period is over. One the
    retention rules now refuse (the policy changed) is cancelled, audited, and says why."""
    now = now or timezone.now()
    due = list(DeletionRequest.unscoped.filter(state=DeletionRequest.PENDING, runs_after__lte=now)
               .select_related("tenant").order_by("runs_after"))
    counts = {"deleted": 0, "refused": 0}
    for request in due:
        try:
            deletion_request_run(tenant=request.tenant, request_id=request.pk, now=now)
            counts["deleted"] += 1
        except DeletionRefused as exc:
            counts["refused"] += _refuse(request, str(exc))
        except Exception:  # noqa: BLE001 - this one is retried next time; the others go on
            log.exception("cooling-off deletion request %s did not run", request.pk)
            counts["failed"] = counts.get("failed", 0) + 1
    return counts


def _refuse(request: DeletionRequest, why: str) -> int:
    with transaction.atomic():
        updated = DeletionRequest.objects.for_tenant(request.tenant).filter(
            pk=request.pk, state=DeletionRequest.PENDING).update(state=DeletionRequest.CANCELLED,
                                                                 decided_at=timezone.now())
        if updated:
            audit_record(tenant=request.tenant, actor=COOLING_OFF, action="deletion.refused", obj_type="study",
                         obj_id=request.study_id or "", detail={"request": request.pk, "reason": why,
                                                                "study_uid": request.study_instance_uid})
    return updated


def _execute(*, tenant, request: DeletionRequest, user, actor: Actor, action: str) -> StudyTombstone:
    """In the caller's transaction, with `request` locked and pending: remove the study."""
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
    audit_record(tenant=tenant, actor=actor, action=action, obj_type="study",
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
    count = len(keys)
    # The headers corrections replaced are kept for a revert; the study's deletion takes them too.
    keys += [key for key in HeaderVersion.objects.for_tenant(tenant).filter(instance__study=study)
             .values_list("old_storage_key", flat=True) if key not in keys]
    requester = request.requested_by
    tombstone = StudyTombstone.objects.for_tenant(tenant).create(
        request=request, study_instance_uid=study.study_instance_uid, num_instances=count,
        size_bytes=total, reason=request.reason, override_retention=request.override_retention,
        retain_until=request.retain_until, requested_by=requester,
        requested_by_email=requester.email if requester else "", approved_by=approver,
        approved_by_email=approver.email if approver else "(cooling-off period ended)",
        requested_at=request.requested_at, deleted_at=now,
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
