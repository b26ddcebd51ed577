"""Choosing and switching clinics: `/` goes to the last clinic used."""


def test_single_clinic_goes_straight_there(client, tenant, make_member, login):
    login(make_member(tenant, "viewer"))
    response = client.get("/")
    assert response.status_code == 302 and response.url == "/t/acme/"


def test_two_clinics_choose_then_remember_last(client, tenant, other_tenant, make_member, login):
    user = make_member(tenant, "viewer", email="both@example.test")
    make_member(other_tenant, "radiologist", email="both@example.test")
    login(user)
    page = client.get("/")
    assert page.status_code == 200
    assert b"/t/acme/" in page.content and b"/t/other/" in page.content
    dashboard = client.get("/t/other/")
    assert dashboard.status_code == 200
    assert b"Switch clinic" in dashboard.content and b'href="/t/acme/"' in dashboard.content
    assert client.get("/").url == "/t/other/"
    client.get("/t/acme/")
    assert client.get("/").url == "/t/acme/"


def test_last_clinic_no_longer_mine_is_ignored(client, tenant, other_tenant, make_member, login):
    from tenants.models import Membership

    user = make_member(tenant, "viewer", email="both@example.test")
    make_member(other_tenant, "viewer", email="both@example.test")
    login(user)
    client.get("/t/other/")
    Membership.objects.for_tenant(other_tenant).filter(user=user).delete()
    assert client.get("/").url == "/t/acme/"
    assert client.get("/t/other/").status_code == 404


def test_no_switcher_with_one_clinic(client, tenant, make_member, login):
    login(make_member(tenant, "viewer"))
    assert b"Switch clinic" not in client.get("/t/acme/").content


def test_anonymous_home_goes_to_login(client, db):
    response = client.get("/")
    assert response.status_code == 302 and response.url.startswith("/login/")
