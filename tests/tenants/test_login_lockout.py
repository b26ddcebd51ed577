"""Account lockout after LOGIN_MAX_FAILURES wrong passwords, and unlocking after the time."""

import logging
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from tests.conftest import PASSWORD


@pytest.fixture(autouse=True)
def _fresh_throttle(settings):
    settings.LOGIN_MAX_FAILURES = 3
    settings.LOGIN_LOCKOUT_MINUTES = 15
    cache.clear()
    yield
    cache.clear()


def _fail(client, email, times):
    for _ in range(times):
        response = client.post("/login/", {"email": email, "password": "not the password"})
    return response


def test_lockout_after_max_failures(client, tenant, owner, caplog):
    with caplog.at_level(logging.INFO, logger="cloudpacs.auth"):
        response = _fail(client, owner.email, 3)
    assert b"this account is locked for 15 more minute" in response.content
    owner.refresh_from_db()
    assert owner.locked_until is not None
    assert timedelta(minutes=14) < owner.locked_until - timezone.now() <= timedelta(minutes=15)
    assert "account locked" in caplog.text
    assert "not the password" not in caplog.text


def test_locked_account_refuses_right_password_without_telling(client, tenant, owner):
    _fail(client, owner.email, 3)
    right = client.post("/login/", {"email": owner.email, "password": PASSWORD})
    wrong = client.post("/login/", {"email": owner.email, "password": "still not it"})
    assert right.status_code == wrong.status_code == 200
    assert "_auth_user_id" not in client.session
    # The same words whether or not the password was right.
    assert b"account is locked" in right.content and b"account is locked" in wrong.content
    assert b"not right" not in right.content and b"not right" not in wrong.content


def test_unlocks_after_lockout_time(client, tenant, owner):
    _fail(client, owner.email, 3)
    owner.refresh_from_db()
    # Move the lock into the past instead of waiting for it.
    owner.locked_until = timezone.now() - timedelta(seconds=1)
    owner.save(update_fields=["locked_until"])
    response = client.post("/login/", {"email": owner.email, "password": PASSWORD})
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.failed_logins == 0 and owner.locked_until is None


def test_after_unlock_a_new_full_set_of_tries(client, tenant, owner):
    _fail(client, owner.email, 3)
    owner.refresh_from_db()
    owner.locked_until = timezone.now() - timedelta(seconds=1)
    owner.save(update_fields=["locked_until"])
    response = _fail(client, owner.email, 1)
    assert b"not right" in response.content
    owner.refresh_from_db()
    assert owner.failed_logins == 1


def test_unknown_email_locks_the_same_way(client, db):
    # Otherwise the lockout message would reveal which addresses have accounts.
    response = _fail(client, "ghost@nowhere.test", 3)
    assert b"this account is locked" in response.content


def test_other_accounts_unaffected(client, tenant, owner, make_member):
    other = make_member(tenant, "viewer")
    _fail(client, owner.email, 3)
    assert client.post("/login/", {"email": other.email, "password": PASSWORD}).status_code == 302
