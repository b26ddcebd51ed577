"""Only a request authenticated by a valid API token skips CSRF; a stray Authorization header
on a cookie-session request does not switch CSRF protection off."""

from django.test import Client

from tests.conftest import PASSWORD


def test_bogus_bearer_header_does_not_exempt_a_session_post(tenant, owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post("/account/", {"action": "password", "old_password": PASSWORD,
                                         "new_password1": "x" * 20, "new_password2": "x" * 20},
                           HTTP_AUTHORIZATION="Bearer not-a-real-token")
    assert response.status_code == 403
    owner.refresh_from_db()
    assert owner.check_password(PASSWORD)


def test_valid_token_needs_no_csrf_token(tenant, make_token):
    client = Client(enforce_csrf_checks=True)
    raw = make_token(tenant, scopes=["upload"])
    response = client.post("/t/acme/dicomweb/studies", data=b"--x--\r\n",
                           content_type='multipart/related; type="application/dicom"; boundary=x',
                           HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code != 403  # reaches STOW (which finds no parts), not CSRF


def test_session_post_to_a_clinic_url_still_needs_csrf(tenant, owner, login):
    client = Client(enforce_csrf_checks=True)
    login(owner, the_client=client)
    response = client.post("/t/acme/settings/tokens/", {"name": "x", "scopes": ["read"]})
    assert response.status_code == 403
