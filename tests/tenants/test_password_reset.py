"""Forgot password (Django's reset tokens, by email), and a reset sent by the clinic's admin:
nobody learns which addresses have accounts, requests are limited, a used or expired link
is refused with a clear page, and every step is in the clinics' audit logs."""

import re

import pytest
from django.core.cache import cache

from tenants.models import AuditEvent, Membership, User
from tests.conftest import PASSWORD
from tests.servers import wait_for

NEW_PASSWORD = "a quite different passphrase 77"
# The request is handled after the answer, on another thread with its own connection: the
# rows it reads must be committed.
pytestmark = pytest.mark.django_db(transaction=True)


def _settled():
    """Until the reset work asked for so far is done: the requests' pool has one thread (a
    job after them runs after them), and two jobs that meet at a barrier run only when both
    of the mail pool's threads are free."""
    import threading

    from cloudpacs.thread_pools import thread_pool

    thread_pool("reset-request", 1).submit(lambda: None).result(timeout=15)
    barrier = threading.Barrier(2, timeout=10)
    for future in [thread_pool("reset-mail", 2).submit(barrier.wait) for _ in range(2)]:
        future.result(timeout=15)


@pytest.fixture(autouse=True)
def _fresh_limits(settings):
    settings.SITE_URL = "https://pacs.example.test"
    cache.clear()
    yield
    cache.clear()


def _actions(tenant, *actions):
    return list(AuditEvent.objects.for_tenant(tenant).filter(action__in=actions).order_by("pk"))


def _mails(mailoutbox, n):
    """The email goes out from a background thread (see tenants/password_reset.py)."""
    wait_for(lambda: len(mailoutbox) >= n, timeout=10, what=f"{n} email(s)")
    return mailoutbox


def _link(mail) -> str:
    return re.search(r"https://pacs\.example\.test(/password-reset/\S+/\S+/)", mail.body).group(1)


def test_forgot_password_end_to_end(client, tenant, owner, mailoutbox):
    owner.failed_logins, owner.locked_until = 4, None
    owner.save()
    response = client.post("/password-reset/", {"email": owner.email.upper()})
    assert response.status_code == 302 and response.url == "/password-reset/sent/"
    [mail] = _mails(mailoutbox, 1)
    assert mail.to == [owner.email]
    link = _link(mail)
    [requested] = _actions(tenant, "auth.password_reset_requested")
    assert requested.detail == {"by": "self"} and requested.actor_label == owner.email

    # The token leaves the address bar before the form is shown (no Referer leak).
    opened = client.get(link)
    assert opened.status_code == 302 and "set-password" in opened.url
    form = client.get(opened.url)
    assert b"Set a new password" in form.content
    weak = client.post(opened.url, {"new_password1": "12345", "new_password2": "12345"})
    assert weak.status_code == 200 and b"too short" in weak.content
    done = client.post(opened.url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done.status_code == 302 and done.url == "/password-reset/done/"
    owner.refresh_from_db()
    assert owner.check_password(NEW_PASSWORD) and owner.failed_logins == 0
    assert len(_actions(tenant, "auth.password_reset")) == 1

    # The link works once: opened again it is refused, clearly, and audited; nothing changes.
    again = client.get(link)
    assert again.status_code == 400 and b"does not work any more" in again.content
    assert len(_actions(tenant, "auth.password_reset_refused")) == 1
    owner.refresh_from_db()
    assert owner.check_password(NEW_PASSWORD)
    assert client.post("/login/", {"email": owner.email, "password": NEW_PASSWORD}).status_code == 302


def test_expired_link_is_refused(client, tenant, owner, mailoutbox, settings):
    client.post("/password-reset/", {"email": owner.email})
    link = _link(_mails(mailoutbox, 1)[0])
    settings.PASSWORD_RESET_TIMEOUT = -1  # the link's hour has passed
    response = client.get(link)
    assert response.status_code == 400 and b"does not work any more" in response.content
    owner.refresh_from_db()
    assert owner.check_password(PASSWORD)
    assert len(_actions(tenant, "auth.password_reset_refused")) == 1


def test_unknown_address_gets_the_same_answer_and_no_email(client, tenant, owner, mailoutbox):
    known = client.post("/password-reset/", {"email": owner.email})
    unknown = client.post("/password-reset/", {"email": "nobody@example.test"})
    assert (unknown.status_code, unknown.url) == (known.status_code, known.url)
    _settled()
    assert len(mailoutbox) == 1 and mailoutbox[0].to == [owner.email]
    assert client.get(unknown.url).content == client.get(known.url).content


def test_a_disabled_account_gets_no_email(client, tenant, owner, mailoutbox):
    User.objects.filter(pk=owner.pk).update(is_active=False)
    assert client.post("/password-reset/", {"email": owner.email}).status_code == 302
    _settled()
    assert mailoutbox == [] and _actions(tenant, "auth.password_reset_requested") == []


def test_emails_per_address_are_limited_silently(client, tenant, owner, mailoutbox, settings):
    settings.PASSWORD_RESET_EMAIL_LIMIT = 2
    answers = {client.post("/password-reset/", {"email": owner.email}).url for _ in range(4)}
    assert answers == {"/password-reset/sent/"}  # the limit does not show
    _settled()
    assert len(mailoutbox) == 2
    assert len(_actions(tenant, "auth.password_reset_requested")) == 2


def test_requests_per_client_address_are_limited(client, tenant, owner, settings):
    settings.PASSWORD_RESET_IP_LIMIT = 3
    for i in range(3):
        assert client.post("/password-reset/", {"email": f"x{i}@example.test"}).status_code == 302
    refused = client.post("/password-reset/", {"email": owner.email})
    assert refused.status_code == 429 and b"Too many password reset requests" in refused.content


def test_guessed_links_count_against_the_limit(client, tenant, owner, settings):
    settings.PASSWORD_RESET_IP_LIMIT = 2
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    uid = urlsafe_base64_encode(force_bytes(owner.pk))
    statuses = [client.get(f"/password-reset/{uid}/abc-{i}/").status_code for i in range(3)]
    assert statuses == [400, 400, 429]
    assert len(_actions(tenant, "auth.password_reset_refused")) == 2


def test_admin_sends_a_member_a_reset(client, tenant, make_member, login, mailoutbox):
    admin = make_member(tenant, "admin")
    radiologist = make_member(tenant, "radiologist")
    login(admin)
    membership = Membership.unscoped.get(user=radiologist)
    response = client.post(f"/t/acme/members/{membership.pk}/password-reset/")
    assert response.status_code == 302
    [mail] = _mails(mailoutbox, 1)
    assert mail.to == [radiologist.email] and "administrator of your clinic" in mail.body
    [event] = _actions(tenant, "member.password_reset_sent")
    assert event.actor_label == admin.email and event.detail == {"email": radiologist.email}
    assert radiologist.email in client.get("/t/acme/members/").content.decode()


def test_admin_cannot_reset_an_owner_nor_another_clinics_member(client, tenant, other_tenant, owner, make_member,
                                                                 login, mailoutbox):
    admin = make_member(tenant, "admin")
    stranger = make_member(other_tenant, "viewer")
    login(admin)
    assert client.post(f"/t/acme/members/{Membership.unscoped.get(user=owner).pk}/password-reset/").status_code == 403
    assert client.post(f"/t/acme/members/{Membership.unscoped.get(user=stranger).pk}/password-reset/").status_code == 404
    viewer = make_member(tenant, "viewer")
    login(viewer)
    assert client.post(f"/t/acme/members/{Membership.unscoped.get(user=admin).pk}/password-reset/").status_code == 403
    assert mailoutbox == [] and _actions(tenant, "member.password_reset_sent") == []


def test_production_never_prints_a_reset_link_to_the_console(client, tenant, owner, make_member, login,
                                                             settings, capsys):
    settings.PRODUCTION = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    assert client.post("/password-reset/", {"email": owner.email}).url == "/password-reset/sent/"
    admin = make_member(tenant, "admin")
    login(admin)
    membership = Membership.unscoped.get(user=owner)
    assert client.post(f"/t/acme/members/{membership.pk}/password-reset/").status_code == 403
    radiologist = Membership.unscoped.get(user=make_member(tenant, "radiologist"))
    refused = client.post(f"/t/acme/members/{radiologist.pk}/password-reset/")
    assert refused.status_code == 503 and b"Email is not set up" in refused.content
    _settled()
    assert "password-reset/" not in capsys.readouterr().out
    assert _actions(tenant, "auth.password_reset_requested", "member.password_reset_sent") == []
