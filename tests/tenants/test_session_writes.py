"""A member's requests do not rewrite the session each time (a viewer loads a study's frames
in hundreds of requests, and each one used to UPDATE and commit the session row), while
the session's expiry still slides with activity; and a session left idle for
SESSION_IDLE_MINUTES ends (automatic logoff), audited."""

import json

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tenants import idle_logoff, roles
from tenants.audit import AuditEvent


def _session_writes(queries) -> int:
    return sum(1 for q in queries if "django_session" in q["sql"]
               and q["sql"].lstrip().upper().startswith(("UPDATE", "INSERT")))


def test_requests_write_the_session_once_a_minute_and_its_expiry_slides(tenant, make_member, login, monkeypatch):
    user = make_member(tenant, roles.RADIOLOGIST)
    client = login(user, the_client=Client())
    url = reverse("archive:worklist", kwargs={"tenant_slug": tenant.slug})
    assert client.get(url).status_code == 200  # the session learns the clinic
    key = client.session.session_key
    for _ in range(3):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        assert _session_writes(queries) == 0
    expiry = Session.objects.get(session_key=key).expire_date
    # The next minute: one write, and the expiry moves on.
    monkeypatch.setattr(idle_logoff, "SESSION_TOUCH_SECONDS", 1e-6)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    assert _session_writes(queries) == 1
    assert Session.objects.get(session_key=key).expire_date > expiry


def test_a_member_without_2fa_costs_no_query_per_device_kind(tenant, make_member, login):
    """Whether the member has a 2FA device comes with the membership, in one query; a
    member who enrols one is asked to verify on the next request, as before."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = make_member(tenant, roles.RADIOLOGIST)
    client = login(user, second_factor=False, the_client=Client())  # a radiologist need not enrol
    url = reverse("archive:worklist", kwargs={"tenant_slug": tenant.slug})
    assert client.get(url).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    assert not [q for q in queries if "otp_" in q["sql"] and "membership" not in q["sql"]]
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/account/2fa/verify/")


def _idle_for(client, seconds: float) -> None:
    session = client.session
    session[idle_logoff.ACTIVE_AT] -= seconds
    session.save()


def test_a_session_idle_for_longer_than_the_limit_is_signed_out_and_audited(tenant, make_member, login, settings):
    settings.SESSION_IDLE_MINUTES = 30
    user = make_member(tenant, roles.RADIOLOGIST)
    client = login(user, the_client=Client())
    url = reverse("archive:worklist", kwargs={"tenant_slug": tenant.slug})
    assert client.get(url).status_code == 200
    _idle_for(client, 29 * 60)  # within the limit: still signed in
    assert client.get(url).status_code == 200
    _idle_for(client, 32 * 60)  # the logoff comes within a minute after the limit
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/login/?")
    assert "idle=30" in response["Location"] and "next=" in response["Location"]
    page = client.get(response["Location"])
    assert b"signed out after 30 minutes without activity" in page.content
    assert client.get(url).status_code == 302  # the session is gone, not only this answer
    [event] = AuditEvent.objects.for_tenant(tenant).filter(action="auth.logout", actor_id=str(user.pk))
    assert event.detail == {"reason": "idle"}


def test_an_idle_viewer_request_gets_a_401_it_can_show(tenant, make_member, login, settings):
    settings.SESSION_IDLE_MINUTES = 30
    user = make_member(tenant, roles.RADIOLOGIST)
    client = login(user, the_client=Client())
    studies = reverse("archive:dicomweb_studies", kwargs={"tenant_slug": tenant.slug})
    assert client.get(studies, HTTP_ACCEPT="application/dicom+json").status_code in (200, 204)
    _idle_for(client, 32 * 60)
    response = client.get(studies, HTTP_ACCEPT="application/dicom+json")
    assert response.status_code == 401
    assert "without activity" in json.loads(response.content)["error"]


def test_a_pages_own_reloads_do_not_keep_an_idle_session_alive(tenant, make_member, login, settings):
    """A study page reloads itself every few seconds while a correction runs: left open,
    it must still reach the automatic logoff. A person's own request is activity."""
    settings.SESSION_IDLE_MINUTES = 30
    user = make_member(tenant, roles.RADIOLOGIST)
    client = login(user, the_client=Client())
    url = reverse("archive:worklist", kwargs={"tenant_slug": tenant.slug})
    assert client.get(url).status_code == 200
    _idle_for(client, 20 * 60)
    assert client.get(url, {"auto_refresh": "1"}).status_code == 200
    _idle_for(client, 12 * 60)  # 32 minutes since the person's last own request
    assert client.get(url, {"auto_refresh": "1"}).status_code == 302


def test_a_login_starts_the_idle_clock_and_a_token_request_is_not_the_session(tenant, make_member, login,
                                                                               make_token, settings):
    settings.SESSION_IDLE_MINUTES = 30
    user = make_member(tenant, roles.RADIOLOGIST)
    client = login(user, the_client=Client())
    assert isinstance(client.session.get(idle_logoff.ACTIVE_AT), int)  # set by the login itself
    _idle_for(client, 32 * 60)
    token = make_token(tenant, scopes=("read",))
    studies = reverse("archive:dicomweb_studies", kwargs={"tenant_slug": tenant.slug})
    # A script sending its token along with a browser's idle cookie is judged by its token.
    assert client.get(studies, HTTP_AUTHORIZATION=f"Bearer {token}").status_code in (200, 204)
    assert client.get(reverse("archive:worklist", kwargs={"tenant_slug": tenant.slug})).status_code == 302


@pytest.mark.parametrize("minutes", [0, -5])
def test_no_idle_limit_when_it_is_set_to_zero_or_less(tenant, make_member, login, settings, minutes):
    settings.SESSION_IDLE_MINUTES = minutes
    user = make_member(tenant, roles.RADIOLOGIST)
    client = login(user, the_client=Client())
    url = reverse("archive:worklist", kwargs={"tenant_slug": tenant.slug})
    assert client.get(url).status_code == 200
    _idle_for(client, 7 * 3600)
    assert client.get(url).status_code == 200


def test_parallel_requests_of_an_idle_session_write_one_logout(tenant, make_member, login, settings, rf):
    """A viewer sends frame requests six at a time: those that loaded the session before the
    first of them ended it must not each audit a logout."""
    from django.contrib.sessions.backends.db import SessionStore

    from tenants.idle_logoff import IdleLogoffMiddleware

    settings.SESSION_IDLE_MINUTES = 30
    user = make_member(tenant, roles.RADIOLOGIST)
    client = login(user, the_client=Client())
    _idle_for(client, 32 * 60)
    key = client.session.session_key
    requests = []
    for _ in range(3):  # each loaded the session before any of them ended it
        request = rf.get("/")
        request.session = SessionStore(session_key=key)
        assert request.session[idle_logoff.ACTIVE_AT]  # loaded now, as each request would
        request.user = user
        requests.append(request)
    middleware = IdleLogoffMiddleware(lambda request: pytest.fail("an idle request went on"))
    answers = [middleware(request) for request in requests]
    assert [answer.status_code for answer in answers] == [302, 302, 302]
    assert all(not request.user.is_authenticated for request in requests)
    assert not Session.objects.filter(session_key=key).exists()
    assert AuditEvent.objects.for_tenant(tenant).filter(action="auth.logout", actor_id=str(user.pk)).count() == 1


def test_the_session_clock_answers_without_being_activity(tenant, make_member, login, settings):
    """The page's countdown (static/js/idle.js) asks how long is left: asking is not the
    person's activity, telling "still here" (a POST) is, and asking after the limit ends
    the session like any request would (401, one audited logout)."""
    settings.SESSION_IDLE_MINUTES = 30
    user = make_member(tenant, roles.RADIOLOGIST)
    client = login(user, the_client=Client(enforce_csrf_checks=True))
    clock = reverse("session_clock")
    _idle_for(client, 20 * 60)
    before = client.session[idle_logoff.ACTIVE_AT]
    left = client.get(clock + "?auto_refresh=1", HTTP_ACCEPT="application/json").json()["seconds_left"]
    assert 10 * 60 <= left <= 11 * 60 + 1 and client.session[idle_logoff.ACTIVE_AT] == before
    assert client.post(clock, HTTP_ACCEPT="application/json").status_code == 403  # no CSRF token
    token = client.get(reverse("account")).cookies["csrftoken"].value
    _idle_for(client, 20 * 60)
    answer = client.post(clock, HTTP_ACCEPT="application/json", HTTP_X_CSRFTOKEN=token)
    assert answer.json()["seconds_left"] >= 31 * 60 - 1  # the clock started again
    _idle_for(client, 32 * 60)
    ended = client.get(clock + "?auto_refresh=1", HTTP_ACCEPT="application/json")
    assert ended.status_code == 401
    assert client.get(clock, HTTP_ACCEPT="application/json").status_code == 401  # no session any more
    [event] = AuditEvent.objects.for_tenant(tenant).filter(action="auth.logout", actor_id=str(user.pk))
    assert event.detail == {"reason": "idle"}
    settings.SESSION_IDLE_MINUTES = 0
    client = login(user, the_client=Client())
    assert client.get(clock).json() == {"seconds_left": None}
    assert b"data-idle-seconds" not in client.get(reverse("account")).content


def test_pages_of_a_signed_in_person_carry_the_countdown(tenant, make_member, login, settings):
    settings.SESSION_IDLE_MINUTES = 45
    client = login(make_member(tenant, roles.VIEWER), the_client=Client())
    page = client.get(reverse("archive:worklist", kwargs={"tenant_slug": tenant.slug})).content.decode()
    assert 'data-idle-seconds="2700"' in page and "js/idle.js" in page
    assert "js/idle.js" not in Client().get(reverse("login")).content.decode()


def test_a_forged_bearer_header_does_not_revive_an_idle_session(tenant, make_member, login, settings):
    """A request with any Authorization header is judged by its token, but the session it
    also carries still ends when idle: the header cannot be used to touch the clock."""
    settings.SESSION_IDLE_MINUTES = 30
    user = make_member(tenant, roles.RADIOLOGIST)
    client = login(user, the_client=Client())
    token = client.get(reverse("account")).cookies["csrftoken"].value
    _idle_for(client, 3 * 60 * 60)
    key = client.session.session_key
    answer = client.post(reverse("session_clock"), HTTP_AUTHORIZATION="Bearer nothing",
                         HTTP_ACCEPT="application/json", HTTP_X_CSRFTOKEN=token)
    assert answer.status_code == 401
    assert not Session.objects.filter(session_key=key).exists()
    assert client.get(reverse("archive:worklist", kwargs={"tenant_slug": tenant.slug})).status_code == 302
    [event] = AuditEvent.objects.for_tenant(tenant).filter(action="auth.logout", actor_id=str(user.pk))
    assert event.detail == {"reason": "idle"}


def test_expired_sessions_are_cleared_by_a_scheduled_task(db):
    """A session keeps a reader's recent worklist searches (patient names among them);
    Django leaves an expired one in the table until clearsessions runs."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from tenants.session_store import SessionStore
    from tenants.tasks import sessions_clear

    entry = next(e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "tenants.sessions_clear")
    assert entry["schedule"] <= 24 * 3600
    old, live = SessionStore(), SessionStore()
    for store in (old, live):
        store["recent"] = {"k": {"name": "Expired^Eve"}}
        store.create()
    Session.objects.filter(session_key=old.session_key).update(expire_date=timezone.now() - timedelta(seconds=1))
    sessions_clear()
    assert list(Session.objects.values_list("session_key", flat=True)) == [live.session_key]
