"""The account page: two-factor status, turning it off, new backup codes, password change."""

from django_otp import user_has_device
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.conftest import PASSWORD


def test_account_needs_second_factor_when_user_has_device(client, tenant, owner, login):
    TOTPDevice.objects.create(user=owner, name="phone", confirmed=True)
    login(owner, second_factor=False)
    response = client.get("/account/")
    assert response.status_code == 302 and response.url.startswith("/account/2fa/verify/")


def test_owner_cannot_turn_2fa_off(client, tenant, owner, login):
    login(owner)
    page = client.get("/account/")
    assert page.status_code == 200
    assert b"cannot turn it off while you are an owner or admin" in page.content
    response = client.post("/account/", {"action": "disable_2fa", "password": PASSWORD})
    assert response.status_code == 400
    assert b"must stay on" in response.content
    assert user_has_device(owner)


def test_radiologist_turns_2fa_off_with_password(client, tenant, make_member, login):
    user = make_member(tenant, "radiologist")
    login(user)
    response = client.post("/account/", {"action": "disable_2fa", "password": "not my password"})
    assert response.status_code == 400
    assert user_has_device(user)
    response = client.post("/account/", {"action": "disable_2fa", "password": PASSWORD})
    assert response.status_code == 302
    assert not user_has_device(user)
    assert client.get("/t/acme/").status_code == 200


def test_new_backup_codes_replace_old_ones(client, tenant, owner, login):
    login(owner)
    first = client.post("/account/", {"action": "backup_codes"}).context["codes"]
    second = client.post("/account/", {"action": "backup_codes"}).context["codes"]
    assert len(second) == 10 and not set(first) & set(second)
    assert sorted(StaticToken.objects.filter(device__user=owner).values_list("token", flat=True)) == sorted(second)


def test_change_password(client, tenant, make_member, login):
    user = make_member(tenant, "viewer")
    login(user, second_factor=False)
    new = "a brand new passphrase 77"
    bad = client.post("/account/", {"action": "password", "old_password": "wrong one",
                                     "new_password1": new, "new_password2": new})
    assert bad.status_code == 400
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    ok = client.post("/account/", {"action": "password", "old_password": PASSWORD,
                                    "new_password1": new, "new_password2": new})
    assert ok.status_code == 302
    user.refresh_from_db()
    assert user.check_password(new)
    # Still logged in: the session follows the new password hash.
    assert client.get("/t/acme/").status_code == 200


def test_weak_new_password_refused(client, tenant, make_member, login):
    user = make_member(tenant, "viewer")
    login(user, second_factor=False)
    response = client.post("/account/", {"action": "password", "old_password": PASSWORD,
                                         "new_password1": "12345678", "new_password2": "12345678"})
    assert response.status_code == 400
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
