"""Inviting someone to a clinic from the members page."""

import re

import pytest

from tenants.audit import Actor, AuditEvent
from tenants.models import Invitation
from tenants.services import invitation_create


def _audit(tenant, action):
    return list(AuditEvent.objects.for_tenant(tenant).filter(action=action))


def test_owner_invites_by_email(client, tenant, owner, login, mailoutbox):
    login(owner)
    response = client.post("/t/acme/members/", {"email": "New.Person@Example.test", "role": "radiologist"})
    assert response.status_code == 200
    invitation = Invitation.objects.for_tenant(tenant).get()
    assert invitation.emailed_at is not None
    assert invitation.email == "new.person@example.test" and invitation.role == "radiologist"
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.to == ["new.person@example.test"]
    assert "Acme Clinic" in mail.subject
    link = re.search(r"http://\S+/invite/(\S+)/", mail.body)
    assert link is not None
    assert Invitation.find(link.group(1)) == invitation
    # The same link on the page, to copy (email may not reach them), once: not on a reload.
    assert f'value="{link.group(0)}"' in response.content.decode()
    assert "Sent by email" in response.content.decode()
    assert link.group(1) not in client.get("/t/acme/members/").content.decode()
    [event] = _audit(tenant, "member.invited")
    assert event.detail == {"email": "new.person@example.test", "role": "radiologist"}
    assert event.actor_label == owner.email
    page = client.get("/t/acme/members/")
    assert b"new.person@example.test" in page.content


def test_admin_cannot_invite_an_owner(client, tenant, make_member, login, mailoutbox):
    admin = make_member(tenant, "admin")
    login(admin)
    response = client.post("/t/acme/members/", {"email": "x@example.test", "role": "owner"})
    assert response.status_code == 400
    assert not Invitation.objects.for_tenant(tenant).exists()
    assert mailoutbox == [] and _audit(tenant, "member.invited") == []


@pytest.mark.parametrize("data", [
    {"email": "not-an-email", "role": "viewer"},
    {"email": "", "role": "viewer"},
    {"email": "a@example.test", "role": "emperor"},
])
def test_bad_input_stores_nothing(client, tenant, owner, login, mailoutbox, data):
    login(owner)
    response = client.post("/t/acme/members/", data)
    assert response.status_code == 400
    assert b"errorlist" in response.content
    assert not Invitation.objects.for_tenant(tenant).exists() and mailoutbox == []


def test_existing_member_is_not_invited(client, tenant, owner, make_member, login, mailoutbox):
    member = make_member(tenant, "viewer")
    login(owner)
    response = client.post("/t/acme/members/", {"email": member.email.upper(), "role": "admin"})
    assert response.status_code == 400
    assert b"already a member" in response.content
    assert not Invitation.objects.for_tenant(tenant).exists() and mailoutbox == []


def test_new_invitation_replaces_pending_one(client, tenant, owner, login, mailoutbox):
    login(owner)
    client.post("/t/acme/members/", {"email": "p@example.test", "role": "viewer"})
    client.post("/t/acme/members/", {"email": "p@example.test", "role": "technologist"})
    first, second = Invitation.objects.for_tenant(tenant).order_by("pk")
    assert first.revoked_at is not None and second.is_usable and second.role == "technologist"
    assert len(_audit(tenant, "member.invitation_revoked")) == 1


def test_viewer_cannot_invite(client, tenant, make_member, login):
    login(make_member(tenant, "viewer"))
    assert client.get("/t/acme/members/").status_code == 403
    assert client.post("/t/acme/members/", {"email": "z@example.test", "role": "viewer"}).status_code == 403
    assert not Invitation.objects.for_tenant(tenant).exists()


def test_email_failure_keeps_the_invitation_and_shows_its_link(client, tenant, owner, login, settings):
    # A real SMTP connection to a closed port: email is not set up. The invitation stands,
    # the page says the email failed and gives the link to pass on; the log says so too.
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2
    login(owner)
    response = client.post("/t/acme/members/", {"email": "q@example.test", "role": "viewer"})
    assert response.status_code == 200
    invitation = Invitation.objects.for_tenant(tenant).get()
    assert invitation.emailed_at is None
    html = response.content.decode()
    assert "The email could not be sent" in html
    token = re.search(r'value="http://\S+/invite/([^/"]+)/"', html).group(1)
    assert Invitation.find(token) == invitation
    [failed] = _audit(tenant, "member.invitation_not_emailed")
    assert failed.detail == {"error": "ConnectionRefusedError"}
    # Listed as not sent; a new link replaces the old one and is shown once.
    assert "not sent" in client.get("/t/acme/members/").content.decode()
    renewed = client.post(f"/t/acme/members/invitations/{invitation.pk}/renew/")
    assert renewed.status_code == 200
    new_token = re.search(r'value="http://\S+/invite/([^/"]+)/"', renewed.content.decode()).group(1)
    assert new_token != token
    assert Invitation.find(token).revoked_at is not None
    assert Invitation.find(new_token).is_usable


def test_renewing_another_clinics_invitation_is_a_404(client, tenant, other_tenant, owner, login, mailoutbox):
    theirs, _ = invitation_create(tenant=other_tenant, email="w@example.test", role="viewer", by_role="owner",
                                  invited_by=None, actor=Actor.system("test"))
    login(owner)
    assert client.post(f"/t/acme/members/invitations/{theirs.pk}/renew/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_production_console_backend_shows_the_link_instead_of_logging_it(client, tenant, owner, login,
                                                                         settings, capsys):
    settings.PRODUCTION = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    login(owner)
    response = client.post("/t/acme/members/", {"email": "q@example.test", "role": "viewer"})
    assert b"The email could not be sent" in response.content
    assert "/invite/" not in capsys.readouterr().out
    assert Invitation.objects.for_tenant(tenant).get().emailed_at is None
