"""The two-person deletion workflow: request, approve (by a different admin), cancel;
approval removes index rows and stored objects and leaves a tombstone and audit events."""

import pytest
from django.test import Client
from django.urls import reverse

from archive.models import Instance, Patient, Series, Study
from archive.retention import deletion
from archive.retention.models import DeletionRequest, StudyRetention, StudyTombstone
from archive.storage.tier1 import tier1_path
from tenants import roles
from tenants.audit import Actor, AuditEvent, audit_verify
from tests.archive.retention_helpers import ingest_series, past, tier1  # noqa: F401

pytestmark = pytest.mark.usefixtures("tier1")


def url(name, tenant, **kwargs):
    return reverse(f"archive:{name}", kwargs={"tenant_slug": tenant.slug, **kwargs})


@pytest.fixture
def admins(tenant, owner, make_member, login):
    """Two admins of the clinic, each logged in with their own browser."""
    second = make_member(tenant, roles.ADMIN)
    return (owner, login(owner, the_client=Client())), (second, login(second, the_client=Client()))


def actions(tenant):
    return list(AuditEvent.objects.for_tenant(tenant).order_by("seq").values_list("action", flat=True))


def request_deletion(client, tenant, study, **data):
    return client.post(url("study_delete_request", tenant, pk=study.pk),
                       {"reason": "duplicate upload of the wrong patient", **data})


def test_request_then_second_admin_approves(tenant, admins, django_capture_on_commit_callbacks):
    (requester, c1), (approver, c2) = admins
    study = ingest_series(tenant, study_date=past(8), n=3)
    keep = ingest_series(tenant, study_date=past(8), patient_id="OTHER", seed=5)
    keys = list(Instance.objects.for_tenant(tenant).filter(study=study).values_list("storage_key", flat=True))
    size = sum(Instance.objects.for_tenant(tenant).filter(study=study).values_list("size_bytes", flat=True))
    assert all(tier1_path(k).exists() for k in keys)

    response = c1.get(url("study_delete_request", tenant, pk=study.pk))
    assert response.status_code == 200 and b"past retention" in response.content
    response = request_deletion(c1, tenant, study)
    assert response.status_code == 302
    req = DeletionRequest.objects.for_tenant(tenant).get()
    assert (req.state, req.requested_by, req.override_retention) == ("pending", requester, False)
    listing = c2.get(url("deletion_requests", tenant))
    assert study.study_instance_uid.encode() in listing.content and b"Approve and delete" in listing.content

    with django_capture_on_commit_callbacks(execute=True):
        response = c2.post(url("deletion_approve", tenant, request_id=req.pk))
    assert response.status_code == 302
    # Index rows gone (study, series, instances, retention, patient without other studies).
    assert not Study.objects.for_tenant(tenant).filter(pk=study.pk).exists()
    assert not Series.objects.for_tenant(tenant).filter(study_id=study.pk).exists()
    assert not Instance.objects.for_tenant(tenant).filter(storage_key__in=keys).exists()
    assert not StudyRetention.objects.for_tenant(tenant).filter(study_id=study.pk).exists()
    assert not Patient.objects.for_tenant(tenant).filter(pk=study.patient_id).exists()
    # Files gone from tier 1 (and both regions: see the SeaweedFS test below).
    assert not any(tier1_path(k).exists() for k in keys)
    # The other study is untouched.
    assert Instance.objects.for_tenant(tenant).filter(study=keep).count() == 2
    assert all(tier1_path(k).exists() for k in Instance.objects.for_tenant(tenant).values_list("storage_key", flat=True))
    tomb = StudyTombstone.objects.for_tenant(tenant).get()
    assert (tomb.study_instance_uid, tomb.num_instances, tomb.size_bytes) == (study.study_instance_uid, 3, size)
    assert (tomb.requested_by, tomb.approved_by) == (requester, approver)
    assert tomb.reason == "duplicate upload of the wrong patient" and tomb.objects_purged_at is not None
    req.refresh_from_db()
    assert (req.state, req.decided_by, req.study_id) == ("approved", approver, None)
    assert actions(tenant)[-3:] == ["deletion.requested", "deletion.approved", "study.deleted"]
    deleted = AuditEvent.objects.for_tenant(tenant).get(action="study.deleted")
    assert deleted.detail["study_uid"] == study.study_instance_uid and deleted.detail["instances"] == 3
    assert "Doe" not in str(deleted.detail)  # no patient name in the tombstone's audit
    assert audit_verify(tenant=tenant) == []


def test_requester_cannot_approve_own_request(tenant, admins):
    (requester, c1), _ = admins
    study = ingest_series(tenant, study_date=past(8))
    request_deletion(c1, tenant, study)
    req = DeletionRequest.objects.for_tenant(tenant).get()
    response = c1.post(url("deletion_approve", tenant, request_id=req.pk), follow=True)
    assert b"cannot approve your own request" in response.content
    assert Study.objects.for_tenant(tenant).filter(pk=study.pk).exists()
    assert Instance.objects.for_tenant(tenant).filter(study=study).count() == 2
    assert all(tier1_path(k).exists() for k in Instance.objects.for_tenant(tenant).values_list("storage_key", flat=True))
    req.refresh_from_db()
    assert req.state == "pending" and not StudyTombstone.objects.for_tenant(tenant).exists()
    assert "deletion.approved" not in actions(tenant)
    # The service refuses too, whoever calls it.
    with pytest.raises(deletion.DeletionRefused):
        deletion.deletion_request_approve(tenant=tenant, request_id=req.pk, user=requester,
                                          actor=Actor(AuditEvent.USER, str(requester.pk), requester.email))


def test_either_admin_can_cancel_and_a_cancelled_request_cannot_be_approved(tenant, admins):
    (_, c1), (_, c2) = admins
    study = ingest_series(tenant, study_date=past(8))
    request_deletion(c1, tenant, study)
    req = DeletionRequest.objects.for_tenant(tenant).get()
    assert c2.post(url("deletion_cancel", tenant, request_id=req.pk)).status_code == 302
    req.refresh_from_db()
    assert req.state == "cancelled"
    response = c2.post(url("deletion_approve", tenant, request_id=req.pk), follow=True)
    assert b"cancelled already" in response.content
    assert Study.objects.for_tenant(tenant).filter(pk=study.pk).exists()
    # The requester may cancel their own, and a new request is possible after a cancel.
    request_deletion(c1, tenant, study)
    second = DeletionRequest.objects.for_tenant(tenant).get(state="pending")
    assert c1.post(url("deletion_cancel", tenant, request_id=second.pk)).status_code == 302
    assert actions(tenant).count("deletion.cancelled") == 2


def test_within_retention_needs_override_and_is_flagged(tenant, admins, django_capture_on_commit_callbacks):
    (_, c1), (_, c2) = admins
    study = ingest_series(tenant, study_date=past(1))
    response = request_deletion(c1, tenant, study)
    assert response.status_code == 400 and b"override retention" in response.content.lower()
    assert not DeletionRequest.objects.for_tenant(tenant).exists()
    assert request_deletion(c1, tenant, study, override_retention="on").status_code == 302
    req = DeletionRequest.objects.for_tenant(tenant).get()
    assert req.override_retention and req.retain_until is not None
    assert b"Overrides retention" in c2.get(url("deletion_requests", tenant)).content
    with django_capture_on_commit_callbacks(execute=True):
        c2.post(url("deletion_approve", tenant, request_id=req.pk))
    assert StudyTombstone.objects.for_tenant(tenant).get().override_retention
    assert not Study.objects.for_tenant(tenant).exists()


def test_one_pending_request_per_study(tenant, admins):
    (_, c1), (_, c2) = admins
    study = ingest_series(tenant, study_date=past(8))
    request_deletion(c1, tenant, study)
    response = request_deletion(c2, tenant, study)
    assert response.status_code == 400 and b"already pending" in response.content
    assert DeletionRequest.objects.for_tenant(tenant).count() == 1


def test_empty_reason_is_refused(tenant, admins):
    (_, c1), _ = admins
    study = ingest_series(tenant, study_date=past(8))
    response = c1.post(url("study_delete_request", tenant, pk=study.pk), {"reason": "   "})
    assert response.status_code == 400 and not DeletionRequest.objects.for_tenant(tenant).exists()


@pytest.mark.parametrize("role", [roles.RADIOLOGIST, roles.TECHNOLOGIST, roles.VIEWER])
def test_staff_without_the_permission_cannot_request_or_approve(tenant, admins, role, make_member, login):
    (_, c1), _ = admins
    study = ingest_series(tenant, study_date=past(8))
    client = login(make_member(tenant, role), the_client=Client())
    assert client.get(url("study_delete_request", tenant, pk=study.pk)).status_code == 403
    assert request_deletion(client, tenant, study).status_code == 403
    assert not DeletionRequest.objects.for_tenant(tenant).exists()
    request_deletion(c1, tenant, study)
    req = DeletionRequest.objects.for_tenant(tenant).get()
    assert client.post(url("deletion_approve", tenant, request_id=req.pk)).status_code == 403
    assert client.post(url("deletion_cancel", tenant, request_id=req.pk)).status_code == 403
    assert client.get(url("deletion_requests", tenant)).status_code == 403
    assert Study.objects.for_tenant(tenant).filter(pk=study.pk).exists()


def test_other_clinics_study_and_request_are_404(tenant, other_tenant, admins, make_member, login):
    (_, c1), _ = admins
    victim = ingest_series(other_tenant, study_date=past(8))
    other_admin = make_member(other_tenant, roles.ADMIN)
    request_deletion(login(other_admin, the_client=Client()), other_tenant, victim)
    req = DeletionRequest.objects.for_tenant(other_tenant).get()
    # Our admin, in our clinic, naming their ids.
    assert c1.get(url("study_delete_request", tenant, pk=victim.pk)).status_code == 404
    assert request_deletion(c1, tenant, victim).status_code == 404
    assert c1.post(url("deletion_approve", tenant, request_id=req.pk)).status_code == 404
    assert c1.post(url("deletion_cancel", tenant, request_id=req.pk)).status_code == 404
    # Our admin in their clinic.
    assert c1.get(url("study_delete_request", other_tenant, pk=victim.pk)).status_code == 404
    assert c1.post(url("deletion_approve", other_tenant, request_id=req.pk)).status_code == 404
    req.refresh_from_db()
    assert req.state == "pending" and Study.objects.for_tenant(other_tenant).filter(pk=victim.pk).exists()


def test_approve_and_cancel_need_post(tenant, admins):
    (_, c1), (_, c2) = admins
    study = ingest_series(tenant, study_date=past(8))
    request_deletion(c1, tenant, study)
    req = DeletionRequest.objects.for_tenant(tenant).get()
    assert c2.get(url("deletion_approve", tenant, request_id=req.pk)).status_code == 405
    assert c2.get(url("deletion_cancel", tenant, request_id=req.pk)).status_code == 405
    assert Study.objects.for_tenant(tenant).filter(pk=study.pk).exists()
