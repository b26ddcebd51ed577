"""The audit page's "Sign-ins" category: only sign-in events, in the page and the CSV
export, and only the clinic's own."""

import csv
import io

import pytest
from django.core.cache import cache
from django.urls import reverse

from tenants import roles
from tenants.audit import Actor, AuditEvent, audit_record
from tests.conftest import PASSWORD, tenant_owner

pytestmark = pytest.mark.usefixtures("audit_master_key", "audit_regions")


@pytest.fixture(autouse=True)
def _fresh_throttle():
    cache.clear()
    yield
    cache.clear()


def audit_url(tenant, name="clinic:audit"):
    return reverse(name, kwargs={"tenant_slug": tenant.slug})


@pytest.fixture
def signed_in_and_out(client, tenant, other_tenant, make_member):
    """A radiologist of acme and other who failed once, logged in and logged out; and one
    event that is not a sign-in."""
    user = make_member(tenant, roles.RADIOLOGIST, email="rad@acme.test")
    make_member(other_tenant, roles.VIEWER, email=user.email)
    client.post("/login/", {"email": user.email, "password": "wrong"})
    client.post("/login/", {"email": user.email, "password": PASSWORD})
    client.post("/logout/")
    audit_record(tenant=tenant, actor=Actor(AuditEvent.USER, str(user.pk), user.email),
                 action="study.viewed", obj_type="study", obj_id="1")
    return user


def test_category_shows_only_sign_ins(client, tenant, signed_in_and_out, login):
    login(tenant_owner(tenant))
    page = client.get(audit_url(tenant), {"category": "signins"})
    assert page.status_code == 200
    assert b"Sign-ins" in page.content  # the choice is on the form
    rad = [(e.action, e.detail.get("reason")) for e in page.context["events"]
           if e.actor_label == "rad@acme.test"]
    assert rad == [("auth.logout", None), ("auth.login", None), ("auth.login_failed", "password")]
    actions = {e.action for e in page.context["events"]}
    assert actions <= {"auth.login", "auth.login_failed", "auth.logout"}  # the owner's login too
    # Without the category, other events are there as well; the link keeps the filter.
    assert "study.viewed" in {e.action for e in client.get(audit_url(tenant)).context["events"]}
    assert "export.csv?category=signins" in page.content.decode()
    recorded = AuditEvent.objects.for_tenant(tenant).filter(action="audit.viewed").order_by("seq")
    assert recorded.first().detail["filters"] == {"category": "signins"}


def test_category_in_the_csv_export(client, tenant, signed_in_and_out, login):
    login(tenant_owner(tenant))
    response = client.get(audit_url(tenant, "clinic:audit_export"), {"category": "signins"})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows and {r["action"] for r in rows} <= {"auth.login", "auth.login_failed", "auth.logout"}
    assert {r["action"] for r in rows if r["actor_label"] == "rad@acme.test"} == {
        "auth.login", "auth.login_failed", "auth.logout"}


def test_unknown_category_is_a_clear_400(client, tenant, login):
    login(tenant_owner(tenant))
    response = client.get(audit_url(tenant), {"category": "everything"})
    assert response.status_code == 400
    assert b"not one of the available choices" in response.content


def test_another_clinics_admin_sees_none_of_them(client, tenant, make_tenant, signed_in_and_out,
                                                 make_member, login):
    third = make_tenant("third")
    login(make_member(third, roles.ADMIN))
    page = client.get(audit_url(third), {"category": "signins"})
    assert page.status_code == 200
    assert [e.action for e in page.context["events"]] == ["auth.login"]  # the admin's own
    assert "rad@acme.test" not in page.content.decode()
    assert all(e.actor_label != "rad@acme.test" for e in page.context["events"])
    assert client.get(audit_url(tenant), {"category": "signins"}).status_code == 404
