"""Passwords are stored with Argon2. The suite hashes with MD5 for speed (cloudpacs/settings.py),
except in tests of hashing itself, marked `argon2`; production never does."""

import pytest
from django.contrib.auth import authenticate

from tests.conftest import PASSWORD
from tests.test_settings_production import start

FIRST_HASHER = ("import django; django.setup(); from django.conf import settings; "
                "print(settings.PASSWORD_HASHERS[0].rsplit('.', 1)[1])")


def test_the_suite_hashes_fast(owner):
    assert owner.password.startswith("md5$")
    assert authenticate(username=owner.email, password=PASSWORD) == owner


@pytest.mark.argon2
def test_passwords_are_stored_with_argon2(owner):
    assert owner.password.startswith("argon2$")
    assert authenticate(username=owner.email, password=PASSWORD) == owner
    owner.refresh_from_db()
    assert owner.password.startswith("argon2$")  # not rehashed by the login


@pytest.mark.parametrize("overrides, hasher", [
    # The servers the tests start inherit the suite's variable.
    ({"CLOUDPACS_ENV": None}, "MD5PasswordHasher"),
    ({"CLOUDPACS_ENV": None, "CLOUDPACS_TEST_FAST_HASHER": None}, "Argon2PasswordHasher"),
    ({"CLOUDPACS_TEST_FAST_HASHER": "1"}, "Argon2PasswordHasher"),  # production ignores it
])
def test_who_hashes_fast(tmp_path, overrides, hasher):
    result = start(tmp_path, FIRST_HASHER, **overrides)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == hasher
