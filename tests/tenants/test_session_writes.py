"""A member's requests do not rewrite the session each time (a viewer loads a study's frames
in hundreds of requests, and each one used to UPDATE and commit the session row), while
the session's expiry still slides with activity."""

from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tenants import middleware, roles


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
    monkeypatch.setattr(middleware, "SESSION_TOUCH_SECONDS", 1e-6)
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
