"""The second step after the password: a code from the app, or a single-use backup code."""

from base64 import b32encode
from datetime import timedelta

import pyotp
import pytest
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice


@pytest.fixture
def device(owner):
    return TOTPDevice.objects.create(user=owner, name="phone", confirmed=True)


def _now_code(device):
    return pyotp.TOTP(b32encode(device.bin_key).decode()).now()


def _wrong(device):
    return "000000" if _now_code(device) != "000000" else "111111"


def test_clinic_asks_for_code_then_verifies(client, tenant, owner, device, login):
    login(owner, second_factor=False)
    response = client.get("/t/acme/")
    assert response.url.startswith("/account/2fa/verify/")
    assert client.get(response.url).status_code == 200
    response = client.post("/account/2fa/verify/", {"code": _now_code(device), "next": "/t/acme/"})
    assert response.status_code == 302 and response.url == "/t/acme/"
    assert client.get("/t/acme/").status_code == 200


def test_code_with_spaces_is_accepted(client, tenant, owner, device, login):
    login(owner, second_factor=False)
    code = _now_code(device)
    response = client.post("/account/2fa/verify/", {"code": f"{code[:3]} {code[3:]}"})
    assert response.status_code == 302


def test_wrong_code_refused(client, tenant, owner, device, login):
    login(owner, second_factor=False)
    response = client.post("/account/2fa/verify/", {"code": _wrong(device), "next": "/t/acme/"})
    assert response.status_code == 200
    assert b"That code is not right" in response.content
    assert client.get("/t/acme/").url.startswith("/account/2fa/verify/")


def test_throttled_after_wrong_code_until_time_passes(client, tenant, owner, device, login):
    login(owner, second_factor=False)
    client.post("/account/2fa/verify/", {"code": _wrong(device)})
    # Straight after a failure even the right code must wait (django-otp's backoff).
    response = client.post("/account/2fa/verify/", {"code": _now_code(device)})
    assert b"Too many wrong codes" in response.content
    device.refresh_from_db()
    device.throttling_failure_timestamp = timezone.now() - timedelta(seconds=5)
    device.save()
    response = client.post("/account/2fa/verify/", {"code": _now_code(device)})
    assert response.status_code == 302


def test_unsafe_next_falls_back_home(client, tenant, owner, device, login):
    login(owner, second_factor=False)
    response = client.post("/account/2fa/verify/?next=//evil.example/x", {"code": _now_code(device)})
    assert response.url == "/"


def test_anonymous_is_sent_to_login(client, db):
    response = client.get("/account/2fa/verify/")
    assert response.status_code == 302 and response.url.startswith("/login/")


def test_backup_code_works_once(client, tenant, owner, device, login):
    static = StaticDevice.objects.create(user=owner, name="Backup codes", confirmed=True)
    StaticToken.objects.create(device=static, token="abcd2345")
    StaticToken.objects.create(device=static, token="wxyz6789")
    login(owner, second_factor=False)
    response = client.post("/account/2fa/verify/", {"code": "ABCD 2345", "next": "/t/acme/"})
    assert response.url == "/t/acme/"
    assert client.get("/t/acme/").status_code == 200
    assert list(StaticToken.objects.filter(device=static).values_list("token", flat=True)) == ["wxyz6789"]

    client.logout()
    login(owner, second_factor=False)
    static.refresh_from_db()
    static.throttling_failure_timestamp = None
    static.save()
    response = client.post("/account/2fa/verify/", {"code": "abcd2345"})
    assert response.status_code == 200
    assert b"That code is not right" in response.content
    assert client.get("/t/acme/").url.startswith("/account/2fa/verify/")


def test_next_with_query_string_survives_the_detour(client, tenant, owner, device, login):
    from urllib.parse import parse_qs, urlsplit

    login(owner, second_factor=False)
    detour = client.get("/t/acme/?a=1&b=2").url
    next_url = parse_qs(urlsplit(detour).query)["next"][0]
    assert next_url == "/t/acme/?a=1&b=2"
    response = client.post("/account/2fa/verify/", {"code": _now_code(device), "next": next_url})
    assert response.url == "/t/acme/?a=1&b=2"
