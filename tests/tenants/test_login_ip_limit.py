"""The per-IP limit on failed logins (credential stuffing across many accounts)."""

import pytest
from django.core.cache import cache

from tests.conftest import PASSWORD


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.LOGIN_MAX_FAILURES = 100  # keep per-account lockout out of the way
    settings.LOGIN_IP_MAX_FAILURES = 4
    cache.clear()
    yield
    cache.clear()


def test_ip_blocked_after_failures_across_accounts(client, tenant, owner, make_member):
    victims = [make_member(tenant, "viewer") for _ in range(4)]
    for victim in victims:
        client.post("/login/", {"email": victim.email, "password": "guess guess"}, REMOTE_ADDR="10.1.1.1")
    # Even the right password is not checked from this address now.
    response = client.post("/login/", {"email": owner.email, "password": PASSWORD}, REMOTE_ADDR="10.1.1.1")
    assert response.status_code == 429
    assert b"Too many failed log-in attempts from your network" in response.content
    assert "_auth_user_id" not in client.session
    # No account was locked by it, and another address still gets in.
    for victim in victims:
        victim.refresh_from_db()
        assert victim.locked_until is None
    response = client.post("/login/", {"email": owner.email, "password": PASSWORD}, REMOTE_ADDR="10.2.2.2")
    assert response.status_code == 302


def test_successful_logins_do_not_count(client, tenant, owner):
    for _ in range(6):
        response = client.post("/login/", {"email": owner.email, "password": PASSWORD}, REMOTE_ADDR="10.3.3.3")
        assert response.status_code == 302
        client.logout()
