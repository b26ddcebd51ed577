"""Deletion in a clinic with one admin: no second admin can approve, so the request waits
DELETION_COOLING_OFF_DAYS, everyone who may delete is emailed and may cancel, and the beat
task runs it once the period is over, with the retention rules checked again then."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from archive.models import Instance, Study
from archive.retention import deletion
from archive.retention.models import DeletionRequest, StudyTombstone
from archive.retention.services import policy_update
from archive.storage.tier1 import tier1_path
from tenants import roles
from tenants.audit import Actor, AuditEvent
from tests.archive.retention_helpers import ingest_series, past, tier1  # noqa: F401
from tests.archive.test_deletion_approver import actor_of, join_as_admin

pytestmark = pytest.mark.usefixtures("tier1")


def url(name, tenant, **kwargs):
    return reverse(f"archive:{name}", kwargs={"tenant_slug": tenant.slug, **kwargs})


def events(tenant, action):
    return list(AuditEvent.objects.for_tenant(tenant).filter(action=action).order_by("seq"))


def test_one_admin_request_waits_then_runs(tenant, owner, make_member, login, mailoutbox, settings,
                                           django_capture_on_commit_callbacks):
    settings.DELETION_COOLING_OFF_DAYS = 7
    make_member(tenant, roles.RADIOLOGIST)  # may not delete: not emailed
    study = ingest_series(tenant, study_date=past(0), n=2)  # sent yesterday, to the wrong clinic
    keys = list(Instance.objects.for_tenant(tenant).filter(study=study).values_list("storage_key", flat=True))
    client = login(owner, the_client=Client())

    page = client.get(url("study_delete_request", tenant, pk=study.pk))
    assert b"waits 7 days" in page.content
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url("study_delete_request", tenant, pk=study.pk),
                               {"reason": "sent to the wrong clinic", "override_retention": "on"})
    assert response.status_code == 302
    request = DeletionRequest.objects.for_tenant(tenant).get()
    assert request.cooling_off and request.override_retention
    assert timedelta(days=6, hours=23) < request.runs_after - timezone.now() <= timedelta(days=7)
    [requested] = events(tenant, "deletion.requested")
    assert requested.detail["runs_after"] == request.runs_after.isoformat()
    # Everyone who may delete is told (here the owner alone), with no patient data.
    assert [m.to for m in mailoutbox] == [[owner.email]]
    assert request.study_instance_uid in mailoutbox[0].body and "/deletions/" in mailoutbox[0].body
    assert "Doe" not in mailoutbox[0].body and study.patient_identifier not in mailoutbox[0].body
    listing = client.get(url("deletion_requests", tenant)).content.decode()
    assert "unless cancelled" in listing and "Approve and delete" not in listing

    # Not before the period is over, neither by the task nor by hand.
    assert deletion.deletions_due_run(now=request.runs_after - timedelta(minutes=1)) == {"deleted": 0, "refused": 0}
    with pytest.raises(deletion.DeletionRefused):
        deletion.deletion_request_run(tenant=tenant, request_id=request.pk)
    assert Study.objects.for_tenant(tenant).filter(pk=study.pk).exists()

    with django_capture_on_commit_callbacks(execute=True):
        assert deletion.deletions_due_run(now=request.runs_after + timedelta(minutes=1)) == {"deleted": 1,
                                                                                           "refused": 0}
    assert not Study.objects.for_tenant(tenant).filter(pk=study.pk).exists()
    assert not any(tier1_path(k).exists() for k in keys)
    tombstone = StudyTombstone.objects.for_tenant(tenant).get()
    assert tombstone.approved_by is None and tombstone.requested_by == owner
    [ended] = events(tenant, "deletion.cooling_off_ended")
    assert ended.actor_label == "deletion cooling-off"
    assert len(events(tenant, "study.deleted")) == 1
    request.refresh_from_db()
    assert request.state == "approved"


def test_an_admin_the_requester_invited_cannot_approve_but_can_cancel(tenant, owner, login, mailoutbox,
                                                                       django_capture_on_commit_callbacks):
    """The owner's own invitee is no second person (test_deletion_approver), so the clinic
    still counts as one admin's: cooling-off, and the invitee is told and may cancel."""
    invitee = join_as_admin(tenant, owner, "helper@acme.test")
    study = ingest_series(tenant, study_date=past(8))
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        request = deletion.deletion_request_create(tenant=tenant, study=study, user=owner, reason="duplicate",
                                                   override_retention=False, actor=actor_of(owner))
    assert request.cooling_off
    assert sorted(m.to[0] for m in mailoutbox) == sorted([owner.email, invitee.email])
    client = login(invitee, the_client=Client())
    listing = client.get(url("deletion_requests", tenant)).content.decode()
    assert "Approve and delete" not in listing and "Cancel" in listing
    assert client.post(url("deletion_approve", tenant, request_id=request.pk)).status_code == 302
    request.refresh_from_db()
    assert request.state == "pending"  # approval refused, as before
    assert client.post(url("deletion_cancel", tenant, request_id=request.pk)).status_code == 302
    request.refresh_from_db()
    assert (request.state, request.decided_by) == ("cancelled", invitee)
    assert len(events(tenant, "deletion.cancelled")) == 1
    assert deletion.deletions_due_run(now=timezone.now() + timedelta(days=30)) == {"deleted": 0, "refused": 0}
    assert Study.objects.for_tenant(tenant).filter(pk=study.pk).exists()


def test_cancelled_and_requested_again_starts_a_full_period(tenant, owner, settings):
    settings.DELETION_COOLING_OFF_DAYS = 7
    study = ingest_series(tenant, study_date=past(8))
    first = deletion.deletion_request_create(tenant=tenant, study=study, user=owner, reason="duplicate",
                                             override_retention=False, actor=actor_of(owner))
    # Three days into its period, it is cancelled, and asked for again.
    DeletionRequest.objects.for_tenant(tenant).filter(pk=first.pk).update(
        requested_at=first.requested_at - timedelta(days=3), runs_after=first.runs_after - timedelta(days=3))
    first.refresh_from_db()
    deletion.deletion_request_cancel(tenant=tenant, request_id=first.pk, user=owner, may_approve=True,
                                     actor=actor_of(owner))
    with pytest.raises(deletion.DeletionRefused, match="cancelled already"):
        deletion.deletion_request_cancel(tenant=tenant, request_id=first.pk, user=owner, may_approve=True,
                                         actor=actor_of(owner))
    second = deletion.deletion_request_create(tenant=tenant, study=study, user=owner, reason="duplicate",
                                              override_retention=False, actor=actor_of(owner))
    assert second.pk != first.pk and second.runs_after - first.runs_after > timedelta(days=2, hours=23)
    assert second.runs_after - timezone.now() > timedelta(days=6, hours=23)
    first.refresh_from_db()
    assert first.state == "cancelled"
    assert len(events(tenant, "deletion.requested")) == 2
    # The old request's period means nothing: at its end, nothing runs.
    assert deletion.deletions_due_run(now=first.runs_after + timedelta(minutes=1)) == {"deleted": 0, "refused": 0}


def test_retention_is_checked_again_when_the_period_ends(tenant, owner):
    study = ingest_series(tenant, study_date=past(8))  # past the 7-year default
    request = deletion.deletion_request_create(tenant=tenant, study=study, user=owner, reason="old",
                                               override_retention=False, actor=actor_of(owner))
    policy_update(tenant=tenant, actor=Actor.system("test"), adult_years=20)  # now it must be kept
    assert deletion.deletions_due_run(now=request.runs_after + timedelta(seconds=1)) == {"deleted": 0, "refused": 1}
    assert Study.objects.for_tenant(tenant).filter(pk=study.pk).exists()
    request.refresh_from_db()
    assert request.state == "cancelled"
    [refused] = events(tenant, "deletion.refused")
    assert "must now be kept until" in refused.detail["reason"]


def test_a_clinic_with_two_admins_keeps_the_two_person_rule(tenant, owner, make_member, mailoutbox,
                                                            django_capture_on_commit_callbacks):
    make_member(tenant, roles.ADMIN)
    study = ingest_series(tenant, study_date=past(8))
    with django_capture_on_commit_callbacks(execute=True):
        request = deletion.deletion_request_create(tenant=tenant, study=study, user=owner, reason="duplicate",
                                                   override_retention=False, actor=actor_of(owner))
    assert request.runs_after is None and mailoutbox == []
    assert deletion.deletions_due_run(now=timezone.now() + timedelta(days=365)) == {"deleted": 0, "refused": 0}


def test_who_may_not_delete_may_not_cancel(tenant, owner, make_member, login):
    study = ingest_series(tenant, study_date=past(8))
    request = deletion.deletion_request_create(tenant=tenant, study=study, user=owner, reason="duplicate",
                                               override_retention=False, actor=actor_of(owner))
    radiologist = login(make_member(tenant, roles.RADIOLOGIST), the_client=Client())
    assert radiologist.post(url("deletion_cancel", tenant, request_id=request.pk)).status_code == 403
    request.refresh_from_db()
    assert request.state == "pending"


def test_one_admin_cannot_clear_the_others_away_then_delete_alone(tenant, owner, make_member, settings):
    from tenants.models import Membership
    from tenants.services import member_remove

    admin = make_member(tenant, roles.ADMIN)
    study = ingest_series(tenant, study_date=past(8))
    member_remove(membership=Membership.objects.for_tenant(tenant).get(user=admin), by_role=roles.OWNER,
                  actor=actor_of(owner))
    with pytest.raises(deletion.DeletionRefused, match="removed or demoted recently"):
        deletion.deletion_request_create(tenant=tenant, study=study, user=owner, reason="duplicate",
                                         override_retention=False, actor=actor_of(owner))
    assert not DeletionRequest.objects.for_tenant(tenant).exists()


def test_no_cooling_off_while_nobody_could_be_told(tenant, owner, settings):
    settings.PRODUCTION = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    study = ingest_series(tenant, study_date=past(8))
    with pytest.raises(deletion.DeletionRefused, match="Email is not set up"):
        deletion.deletion_request_create(tenant=tenant, study=study, user=owner, reason="duplicate",
                                         override_retention=False, actor=actor_of(owner))
