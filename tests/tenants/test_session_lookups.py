"""The session and user look-ups every signed-in request makes (tenants/session_store.py,
tenants/auth_backend.py): compiled once, and answering as Django's own do."""

import datetime

import pytest
from django.contrib.auth import BACKEND_SESSION_KEY
from django.contrib.sessions.models import Session
from django.utils import timezone

from tenants.auth_backend import UserBackend
from tenants.session_store import SessionStore

pytestmark = pytest.mark.django_db


def test_an_expired_session_loads_as_empty_and_gets_a_new_key():
    store = SessionStore()
    store["x"] = 1
    store.save()
    key = store.session_key
    assert SessionStore(key).load() == {"x": 1}
    Session.objects.filter(session_key=key).update(expire_date=timezone.now() - datetime.timedelta(seconds=1))
    expired = SessionStore(key)
    assert expired.load() == {} and expired.session_key is None


def test_a_session_signed_in_through_modelbackend_stays_signed_in(client, tenant, make_member, login):
    user = make_member(tenant)
    login(user, second_factor=False)
    session = client.session
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"  # as before the change
    session.save()
    response = client.get(f"/t/{tenant.slug}/studies/")
    assert response.status_code == 200 and response.wsgi_request.user == user


def test_an_inactive_or_unknown_user_is_nobody(tenant, make_member):
    user = make_member(tenant)
    assert UserBackend().get_user(user.pk) == user
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert UserBackend().get_user(user.pk) is None
    assert UserBackend().get_user(user.pk + 1000) is None


def test_a_deactivated_user_s_session_is_signed_out(client, tenant, make_member, login):
    user = make_member(tenant)
    login(user, second_factor=False)
    assert client.get(f"/t/{tenant.slug}/studies/").status_code == 200
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert client.get(f"/t/{tenant.slug}/studies/").status_code == 302


def test_a_suspended_clinic_answers_404_to_its_members_and_tokens(client, tenant, make_member, login, make_token):
    from tenants.models import Tenant

    login(make_member(tenant), second_factor=False)
    token = make_token(tenant, scopes=("read",))
    pages, api = f"/t/{tenant.slug}/studies/", f"/t/{tenant.slug}/dicomweb/studies"
    assert client.get(pages).status_code == 200
    assert client.get(api, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.SUSPENDED)
    assert client.get(pages).status_code == 404
    assert client.get(api, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 404


def test_another_session_of_the_user_ends_when_the_password_changes(client, tenant, make_member, login):
    from django.test import Client

    user = make_member(tenant)
    login(user, second_factor=False)
    other = login(user, second_factor=False, the_client=Client())
    assert other.get(f"/t/{tenant.slug}/studies/").status_code == 200
    user.set_password("an entirely new passphrase")
    user.save()
    assert other.get(f"/t/{tenant.slug}/studies/").status_code == 302  # the session's hash no longer matches
