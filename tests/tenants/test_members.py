"""The members page: list, change role, remove, withdraw invitations, and who may do it."""

import pytest

from tenants.audit import Actor, AuditEvent
from tenants.models import Invitation, Membership
from tenants.services import invitation_create


def _m(tenant, user):
    return Membership.objects.for_tenant(tenant).get(user=user)


def _events(tenant, action):
    return list(AuditEvent.objects.for_tenant(tenant).filter(action=action))


def test_list_members(client, tenant, owner, make_member, login):
    tech = make_member(tenant, "technologist")
    login(owner)
    page = client.get("/t/acme/members/")
    assert page.status_code == 200
    assert owner.email.encode() in page.content and tech.email.encode() in page.content


def test_change_role_is_audited(client, tenant, owner, make_member, login):
    tech = make_member(tenant, "technologist")
    login(owner)
    response = client.post(f"/t/acme/members/{_m(tenant, tech).pk}/role/", {"role": "radiologist"})
    assert response.status_code == 302
    assert _m(tenant, tech).role == "radiologist"
    [event] = _events(tenant, "member.role_changed")
    assert event.detail == {"email": tech.email, "from": "technologist", "to": "radiologist"}
    assert event.object_id == str(tech.pk) and event.actor_label == owner.email


def test_remove_member_is_audited(client, tenant, owner, make_member, login):
    tech = make_member(tenant, "technologist")
    login(owner)
    response = client.post(f"/t/acme/members/{_m(tenant, tech).pk}/remove/")
    assert response.status_code == 302
    assert not Membership.objects.for_tenant(tenant).filter(user=tech).exists()
    [event] = _events(tenant, "member.removed")
    assert event.detail == {"email": tech.email, "role": "technologist"}


def test_last_owner_cannot_be_demoted_or_removed(client, tenant, owner, login):
    login(owner)
    mine = _m(tenant, owner)
    response = client.post(f"/t/acme/members/{mine.pk}/role/", {"role": "admin"})
    assert response.status_code == 400 and b"at least one owner" in response.content
    response = client.post(f"/t/acme/members/{mine.pk}/remove/")
    assert response.status_code == 400 and b"last owner" in response.content
    assert _m(tenant, owner).role == "owner"
    assert _events(tenant, "member.role_changed") == [] and _events(tenant, "member.removed") == []


def test_one_of_two_owners_can_step_down(client, tenant, owner, make_member, login):
    second = make_member(tenant, "owner")
    login(owner)
    response = client.post(f"/t/acme/members/{_m(tenant, owner).pk}/role/", {"role": "admin"})
    assert response.status_code == 302
    assert _m(tenant, owner).role == "admin"
    # Now `second` is the last owner and is protected.
    response = client.post(f"/t/acme/members/{_m(tenant, second).pk}/remove/")
    assert response.status_code == 400


def test_admin_cannot_touch_owners_or_make_owners(client, tenant, owner, make_member, login):
    admin = make_member(tenant, "admin")
    viewer = make_member(tenant, "viewer")
    make_member(tenant, "owner")  # two owners: the last-owner rule is not what stops the admin
    login(admin)
    assert client.post(f"/t/acme/members/{_m(tenant, viewer).pk}/role/", {"role": "owner"}).status_code == 400
    assert client.post(f"/t/acme/members/{_m(tenant, owner).pk}/role/", {"role": "viewer"}).status_code == 400
    assert client.post(f"/t/acme/members/{_m(tenant, owner).pk}/remove/").status_code == 400
    assert _m(tenant, viewer).role == "viewer" and _m(tenant, owner).role == "owner"
    # What an admin may do, they can.
    assert client.post(f"/t/acme/members/{_m(tenant, viewer).pk}/role/", {"role": "technologist"}).status_code == 302


def test_unknown_role_refused(client, tenant, owner, make_member, login):
    viewer = make_member(tenant, "viewer")
    login(owner)
    response = client.post(f"/t/acme/members/{_m(tenant, viewer).pk}/role/", {"role": "root"})
    assert response.status_code == 400
    assert _m(tenant, viewer).role == "viewer"


@pytest.mark.parametrize("role", ["viewer", "technologist", "radiologist"])
def test_members_without_permission_get_403(client, tenant, owner, make_member, login, role):
    login(make_member(tenant, role))
    target = _m(tenant, owner).pk
    assert client.get("/t/acme/members/").status_code == 403
    assert client.post(f"/t/acme/members/{target}/role/", {"role": "viewer"}).status_code == 403
    assert client.post(f"/t/acme/members/{target}/remove/").status_code == 403
    assert _m(tenant, owner).role == "owner"


def test_nav_link_only_for_those_allowed(client, tenant, owner, make_member, login):
    login(make_member(tenant, "viewer"))
    assert b"/t/acme/members/" not in client.get("/t/acme/").content
    login(owner)
    assert b"/t/acme/members/" in client.get("/t/acme/").content


def test_other_clinics_members_are_404(client, tenant, other_tenant, owner, login):
    login(owner)
    theirs = Membership.objects.for_tenant(other_tenant).get()
    assert client.post(f"/t/acme/members/{theirs.pk}/role/", {"role": "viewer"}).status_code == 404
    assert client.post(f"/t/acme/members/{theirs.pk}/remove/").status_code == 404
    assert client.get("/t/other/members/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.role == "owner"


def test_withdraw_invitation(client, tenant, other_tenant, owner, login, mailoutbox):
    invitation, _ = invitation_create(tenant=tenant, email="w@example.test", role="viewer",
                                      by_role="owner", invited_by=owner, actor=Actor.system("test"))
    theirs, _ = invitation_create(tenant=other_tenant, email="w@example.test", role="viewer",
                                  by_role="owner", invited_by=None, actor=Actor.system("test"))
    login(owner)
    assert client.post(f"/t/acme/members/invitations/{theirs.pk}/revoke/").status_code == 404
    assert client.post(f"/t/acme/members/invitations/{invitation.pk}/revoke/").status_code == 302
    invitation.refresh_from_db()
    theirs = Invitation.unscoped.get(pk=theirs.pk)
    assert invitation.revoked_at is not None and theirs.revoked_at is None
    [event] = _events(tenant, "member.invitation_revoked")
    assert event.detail == {"email": "w@example.test", "role": "viewer"}


def test_api_token_cannot_manage_members(client, tenant, make_token):
    raw = make_token(tenant, scopes=["upload", "read"])
    response = client.get("/t/acme/members/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 403
