"""Accepting an invitation link: new people sign up, existing users join; bad links change nothing."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tenants.audit import Actor, AuditEvent
from tenants.models import Invitation, Membership, User
from tenants.services import invitation_create, invitation_revoke
from tests.conftest import PASSWORD

NEW_PASSWORD = "violet tram 93 ladder"


@pytest.fixture
def invite(tenant, owner, mailoutbox):
    def make(email="newbie@example.test", role="technologist"):
        return invitation_create(tenant=tenant, email=email, role=role, by_role="owner",
                                 invited_by=owner, actor=Actor.system("test"))

    return make


def _members(tenant):
    return Membership.objects.for_tenant(tenant).count()


def test_new_person_signs_up_and_joins(client, tenant, invite):
    invitation, raw = invite()
    page = client.get(f"/invite/{raw}/")
    assert page.status_code == 200 and b"newbie@example.test" in page.content
    response = client.post(f"/invite/{raw}/", {"full_name": "Nina Newbie", "password1": NEW_PASSWORD,
                                               "password2": NEW_PASSWORD})
    assert response.status_code == 302 and response.url == "/t/acme/"
    user = User.objects.get(email="newbie@example.test")
    assert user.full_name == "Nina Newbie" and user.check_password(NEW_PASSWORD)
    assert Membership.objects.for_tenant(tenant).get(user=user).role == "technologist"
    invitation.refresh_from_db()
    assert invitation.accepted_at is not None
    event = AuditEvent.objects.for_tenant(tenant).filter(action="member.joined").get()
    assert event.actor_label == user.email and event.detail["role"] == "technologist"
    assert client.get("/t/acme/").status_code == 200  # logged in, no 2FA needed for the role


def test_new_admin_is_sent_to_2fa_setup(client, tenant, invite):
    _, raw = invite(role="admin")
    client.post(f"/invite/{raw}/", {"full_name": "Ada Admin", "password1": NEW_PASSWORD,
                                    "password2": NEW_PASSWORD})
    assert client.get("/t/acme/").url.startswith("/account/2fa/setup/")


@pytest.mark.parametrize("data", [
    {"full_name": "Nina", "password1": "short", "password2": "short"},
    {"full_name": "Nina", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD + "x"},
    {"full_name": "  ", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
])
def test_bad_signup_input_creates_nothing(client, tenant, invite, data):
    invitation, raw = invite()
    response = client.post(f"/invite/{raw}/", data)
    assert response.status_code == 400
    assert not User.objects.filter(email="newbie@example.test").exists()
    invitation.refresh_from_db()
    assert invitation.is_usable


def test_logged_in_user_with_matching_email_joins(client, tenant, other_tenant, login, invite):
    person = Membership.objects.for_tenant(other_tenant).get().user  # owner@other.test
    invitation, raw = invite(email=person.email.upper(), role="viewer")
    login(person)
    page = client.get(f"/invite/{raw}/")
    assert page.status_code == 200 and b"Join Acme Clinic" in page.content
    assert not Membership.objects.for_tenant(tenant).filter(user=person).exists()  # GET changes nothing
    response = client.post(f"/invite/{raw}/")
    assert response.url == "/t/acme/"
    assert Membership.objects.for_tenant(tenant).get(user=person).role == "viewer"


def test_existing_account_not_logged_in_is_asked_to_log_in(client, tenant, other_tenant, invite):
    _, raw = invite(email="owner@other.test")
    page = client.get(f"/invite/{raw}/")
    assert b"log in to accept" in page.content
    # Posting a sign-up form for an existing account must not create or change anything.
    before = _members(tenant)
    response = client.post(f"/invite/{raw}/", {"full_name": "X", "password1": NEW_PASSWORD,
                                               "password2": NEW_PASSWORD})
    assert response.status_code == 200 and _members(tenant) == before
    assert User.objects.get(email="owner@other.test").check_password(PASSWORD)


def test_wrong_email_refused(client, tenant, make_member, other_tenant, login, invite):
    invitation, raw = invite(email="someone.else@example.test")
    stranger = Membership.objects.for_tenant(other_tenant).get().user
    login(stranger)
    before = _members(tenant)
    for response in (client.get(f"/invite/{raw}/"), client.post(f"/invite/{raw}/")):
        assert response.status_code == 403
        assert b"sent to another email address" in response.content
    assert _members(tenant) == before
    invitation.refresh_from_db()
    assert invitation.is_usable


def test_reused_link_refused(client, tenant, invite):
    _, raw = invite()
    client.post(f"/invite/{raw}/", {"full_name": "Nina", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    client.logout()
    before = _members(tenant)
    response = client.post(f"/invite/{raw}/", {"full_name": "Eve", "password1": NEW_PASSWORD,
                                               "password2": NEW_PASSWORD})
    assert response.status_code == 410 and b"already been used" in response.content
    assert _members(tenant) == before


def test_expired_link_refused(client, tenant, invite):
    invitation, raw = invite()
    Invitation.unscoped.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    for response in (client.get(f"/invite/{raw}/"),
                     client.post(f"/invite/{raw}/", {"full_name": "N", "password1": NEW_PASSWORD,
                                                     "password2": NEW_PASSWORD})):
        assert response.status_code == 410 and b"expired" in response.content
    assert not User.objects.filter(email="newbie@example.test").exists()


def test_revoked_link_refused(client, tenant, invite):
    invitation, raw = invite()
    invitation_revoke(invitation=invitation, actor=Actor.system("test"))
    response = client.post(f"/invite/{raw}/", {"full_name": "N", "password1": NEW_PASSWORD,
                                               "password2": NEW_PASSWORD})
    assert response.status_code == 410 and b"withdrawn" in response.content
    assert not User.objects.filter(email="newbie@example.test").exists()


def test_unknown_link_is_404(client, db):
    response = client.get("/invite/not-a-real-token/")
    assert response.status_code == 404 and b"not valid" in response.content


def test_already_member_changes_nothing(client, tenant, make_member, login, invite):
    # Joined some other way after the invitation was sent.
    invitation, raw = invite(email="late@example.test", role="admin")
    member = make_member(tenant, "viewer", email="late@example.test")
    login(member)
    response = client.post(f"/invite/{raw}/")
    assert response.status_code == 409
    assert Membership.objects.for_tenant(tenant).get(user=member).role == "viewer"
    invitation.refresh_from_db()
    assert invitation.accepted_at is None


def test_user_with_device_must_verify_before_joining(client, tenant, other_tenant, login, invite):
    person = Membership.objects.for_tenant(other_tenant).get().user
    _, raw = invite(email=person.email)
    from django_otp.plugins.otp_totp.models import TOTPDevice

    TOTPDevice.objects.create(user=person, name="phone", confirmed=True)
    login(person, second_factor=False)
    response = client.post(f"/invite/{raw}/")
    assert response.status_code == 302 and response.url.startswith("/account/2fa/verify/")
    assert not Membership.objects.for_tenant(tenant).filter(user=person).exists()
