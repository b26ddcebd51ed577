"""Enrolling a TOTP authenticator app; owners must do it before using their clinic."""

from base64 import b32encode

import pyotp
from django_otp import user_has_device
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice


def _code(device: TOTPDevice) -> str:
    """What the person's phone would show now."""
    return pyotp.TOTP(b32encode(device.bin_key).decode()).now()


def test_owner_must_enrol_before_reaching_clinic(client, tenant, owner, login):
    login(owner, second_factor=False)
    response = client.get("/t/acme/")
    assert response.status_code == 302
    assert response.url.startswith("/account/2fa/setup/")


def test_viewer_without_device_is_not_forced(client, tenant, make_member, login):
    login(make_member(tenant, "viewer"), second_factor=False)
    assert client.get("/t/acme/").status_code == 200


def test_enrol_with_real_code_then_backup_codes_then_clinic(client, tenant, owner, login):
    login(owner, second_factor=False)
    page = client.get("/account/2fa/setup/?next=/t/acme/")
    assert page.status_code == 200
    device = TOTPDevice.objects.get(user=owner, confirmed=False)
    secret = b32encode(device.bin_key).decode()
    html = page.content.decode()
    assert "<svg" in html and "<?xml" not in html
    assert " ".join(secret[i:i + 4] for i in range(0, len(secret), 4)) in html
    # Reloading keeps the same key, so a scanned QR code stays valid.
    client.get("/account/2fa/setup/")
    assert TOTPDevice.objects.filter(user=owner).count() == 1

    response = client.post("/account/2fa/setup/", {"code": _code(device), "next": "/t/acme/"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    codes = response.context["codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    assert sorted(codes) == sorted(StaticToken.objects.filter(device__user=owner).values_list("token", flat=True))
    for code in codes:
        assert code in response.content.decode()
    assert 'href="/t/acme/"' in response.content.decode()
    device.refresh_from_db()
    assert device.confirmed
    assert client.get("/t/acme/").status_code == 200
    # The codes are not shown again anywhere.
    assert codes[0] not in client.get("/account/").content.decode()
    assert codes[0] not in client.get("/account/2fa/setup/").content.decode()


def test_wrong_code_does_not_enrol(client, tenant, owner, login):
    login(owner, second_factor=False)
    client.get("/account/2fa/setup/")
    device = TOTPDevice.objects.get(user=owner)
    wrong = "000000" if _code(device) != "000000" else "111111"
    response = client.post("/account/2fa/setup/", {"code": wrong})
    assert response.status_code == 200
    assert b"That code is not right" in response.content
    assert not user_has_device(owner)
    assert not StaticToken.objects.filter(device__user=owner).exists()
    assert client.get("/t/acme/").url.startswith("/account/2fa/setup/")


def test_password_alone_cannot_add_a_device(client, tenant, owner, login):
    TOTPDevice.objects.create(user=owner, name="phone", confirmed=True)
    login(owner, second_factor=False)
    response = client.get("/account/2fa/setup/")
    assert response.status_code == 302
    assert response.url.startswith("/account/2fa/verify/")
    assert TOTPDevice.objects.filter(user=owner).count() == 1


def test_replacing_app_when_verified(client, tenant, owner, login):
    login(owner)  # verified with the fixture's device
    client.get("/account/2fa/setup/")
    new = TOTPDevice.objects.get(user=owner, confirmed=False)
    response = client.post("/account/2fa/setup/", {"code": _code(new)})
    assert response.status_code == 200
    assert list(TOTPDevice.objects.filter(user=owner).values_list("pk", flat=True)) == [new.pk]
    assert client.get("/t/acme/").status_code == 200


def test_setup_says_when_codes_are_throttled(client, tenant, owner, login):
    """As the verify page does: after a wrong code even the right one must wait, and the
    page says so instead of calling a right code wrong."""
    login(owner, second_factor=False)
    client.get("/account/2fa/setup/")
    device = TOTPDevice.objects.get(user=owner, confirmed=False)
    right = _code(device)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    first = client.post("/account/2fa/setup/", {"code": wrong})
    assert b"That code is not right" in first.content
    throttled = client.post("/account/2fa/setup/", {"code": right})
    assert throttled.status_code == 200
    assert b"Too many wrong codes" in throttled.content
    device.refresh_from_db()
    assert not device.confirmed
