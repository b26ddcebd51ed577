"""Who may be the second admin of a deletion: someone who was already a member when it was
requested and who was not brought in by the requester. Otherwise one admin could invite a
mailbox they control as a new admin and approve their own request with it."""

import pytest
from django.test import Client
from django.urls import reverse

from archive.models import Instance, Study
from archive.retention import deletion
from archive.retention.models import DeletionRequest, StudyTombstone
from archive.storage.tier1 import tier1_path
from tenants import roles
from tenants.audit import Actor, AuditEvent
from tenants.models import Membership, User
from tenants.services import invitation_accept_new_user, invitation_create
from tests.archive.retention_helpers import ingest_series, past, tier1  # noqa: F401
from tests.conftest import PASSWORD

pytestmark = pytest.mark.usefixtures("tier1")


def actor_of(user):
    return Actor(AuditEvent.USER, str(user.pk), user.email)


@pytest.fixture
def requester(tenant, make_member):
    """Admin A, who asks for the deletion."""
    return make_member(tenant, roles.ADMIN, email="admin-a@acme.test")


def request_delete(tenant, study, user) -> DeletionRequest:
    return deletion.deletion_request_create(tenant=tenant, study=study, user=user, reason="wrong patient",
                                            override_retention=False, actor=actor_of(user))


def join_as_admin(tenant, inviter, email):
    """`inviter` invites `email` as admin and the invitee signs up (the real services)."""
    by_role = Membership.objects.for_tenant(tenant).get(user=inviter).role
    invitation, _ = invitation_create(tenant=tenant, email=email, role=roles.ADMIN, by_role=by_role,
                                      invited_by=inviter, actor=actor_of(inviter))
    invitation_accept_new_user(invitation=invitation, full_name="Second Admin", password=PASSWORD,
                               actor=Actor.system("test"))
    return User.objects.get(email=email)


def assert_nothing_deleted(tenant, study, req):
    assert Study.objects.for_tenant(tenant).filter(pk=study.pk).exists()
    keys = list(Instance.objects.for_tenant(tenant).filter(study=study).values_list("storage_key", flat=True))
    assert len(keys) == 2 and all(tier1_path(k).exists() for k in keys)
    req.refresh_from_db()
    assert req.state == "pending" and req.decided_by is None
    assert not StudyTombstone.objects.for_tenant(tenant).exists()
    actions = set(AuditEvent.objects.for_tenant(tenant).values_list("action", flat=True))
    assert not actions & {"deletion.approved", "study.deleted"}


def test_admin_invited_by_the_requester_after_the_request_is_refused(tenant, requester, login, mailoutbox):
    """The bypass: A requests, invites a mailbox A controls as admin, enrols 2FA, approves."""
    study = ingest_series(tenant, study_date=past(8))
    req = request_delete(tenant, study, requester)
    sock_puppet = join_as_admin(tenant, requester, "a-other-mailbox@example.test")
    client = login(sock_puppet, the_client=Client())  # with 2FA verified
    response = client.post(reverse("archive:deletion_approve", kwargs={"tenant_slug": tenant.slug,
                                                                      "request_id": req.pk}), follow=True)
    assert response.status_code == 200
    assert b"joined this clinic after this deletion was requested" in response.content
    assert_nothing_deleted(tenant, study, req)


def test_admin_invited_by_the_requester_before_the_request_is_refused(tenant, requester, mailoutbox):
    """The same trick prepared in advance: the requester's own invitee is not a second person."""
    puppet = join_as_admin(tenant, requester, "prepared@example.test")
    study = ingest_series(tenant, study_date=past(8))
    req = request_delete(tenant, study, requester)
    with pytest.raises(deletion.DeletionRefused, match="invitation from the admin who requested"):
        deletion.deletion_request_approve(tenant=tenant, request_id=req.pk, user=puppet, actor=actor_of(puppet))
    assert_nothing_deleted(tenant, study, req)


def test_admin_who_joined_after_the_request_through_someone_else_is_refused(tenant, owner, requester,
                                                                            mailoutbox):
    study = ingest_series(tenant, study_date=past(8))
    req = request_delete(tenant, study, requester)
    newcomer = join_as_admin(tenant, owner, "newcomer@example.test")
    with pytest.raises(deletion.DeletionRefused, match="joined this clinic after this deletion was requested"):
        deletion.deletion_request_approve(tenant=tenant, request_id=req.pk, user=newcomer,
                                          actor=actor_of(newcomer))
    assert_nothing_deleted(tenant, study, req)


def test_long_standing_admins_still_approve(tenant, owner, requester, mailoutbox, django_capture_on_commit_callbacks):
    """The owner (there from the start) approves; so does an admin invited by someone other
    than the requester before the request."""
    invited_by_owner = join_as_admin(tenant, owner, "colleague@example.test")
    first, second = ingest_series(tenant, study_date=past(8)), ingest_series(tenant, study_date=past(8), seed=3,
                                                                           patient_id="OTHER")
    req1, req2 = request_delete(tenant, first, requester), request_delete(tenant, second, requester)
    for req, approver in ((req1, owner), (req2, invited_by_owner)):
        with django_capture_on_commit_callbacks(execute=True):
            tomb = deletion.deletion_request_approve(tenant=tenant, request_id=req.pk, user=approver,
                                                     actor=actor_of(approver))
        assert (tomb.requested_by, tomb.approved_by) == (requester, approver)
    assert not Study.objects.for_tenant(tenant).exists()


def test_the_list_offers_approval_only_to_an_admin_who_may_give_it(tenant, owner, requester, login, mailoutbox):
    study = ingest_series(tenant, study_date=past(8))
    request_delete(tenant, study, requester)
    latecomer = join_as_admin(tenant, owner, "late-admin@example.test")
    url = reverse("archive:deletion_requests", kwargs={"tenant_slug": tenant.slug})
    late_page = login(latecomer, the_client=Client()).get(url).content.decode()
    assert "Approve and delete" not in late_page and "joined this clinic after" in late_page
    owner_page = login(owner, the_client=Client()).get(url).content.decode()
    assert "Approve and delete" in owner_page
    requester_page = login(requester, the_client=Client()).get(url).content.decode()
    assert "Approve and delete" not in requester_page and "Waiting for a second admin" in requester_page
