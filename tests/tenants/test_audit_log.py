"""The clinic's audit log page and its CSV export: filters, paging, who may read it."""

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tenants import roles
from tenants.audit import Actor, AuditEvent, audit_record
from tenants.views.audit import PAGE_SIZE


def audit_url(tenant, name="clinic:audit"):
    return reverse(name, kwargs={"tenant_slug": tenant.slug})


def record(tenant, action, label="alice@acme.test", obj=("study", "1"), detail=None):
    return audit_record(tenant=tenant, actor=Actor(AuditEvent.USER, "7", label), action=action,
                        obj_type=obj[0], obj_id=obj[1], detail=detail or {})


def seqs_on_page(response):
    return [e.seq for e in response.context["events"]]


@pytest.fixture
def owner_client(login, owner):
    return login(owner)


def test_owner_reads_newest_first_and_the_read_is_audited(tenant, owner_client):
    record(tenant, "study.viewed")
    record(tenant, "share.created")
    response = owner_client.get(audit_url(tenant))
    assert response.status_code == 200
    seqs = seqs_on_page(response)
    assert seqs == sorted(seqs, reverse=True)
    assert "share.created" in response.content.decode()
    viewed = AuditEvent.objects.for_tenant(tenant).order_by("-seq").first()
    assert viewed.action == "audit.viewed"
    assert viewed.actor_label == "owner@acme.test"


def test_filters(tenant, owner_client):
    record(tenant, "study.viewed", label="alice@acme.test", obj=("study", "11"))
    record(tenant, "study.downloaded", label="bob@acme.test", obj=("study", "12"))
    record(tenant, "member.added", label="bob@acme.test", obj=("user", "5"))

    def actions(**params):
        response = owner_client.get(audit_url(tenant), params)
        assert response.status_code == 200
        return sorted(e.action for e in response.context["events"])

    assert actions(action="study.viewed") == ["study.viewed"]
    assert actions(action="study.") == ["study.downloaded", "study.viewed"]
    assert actions(action="study") == []  # exact unless it ends with "."
    assert actions(actor="bob@") == ["member.added", "study.downloaded"]
    assert actions(object_type="study", object_id="12") == ["study.downloaded"]
    today = timezone.now().date()
    assert "study.viewed" in actions(date_from=today.isoformat(), date_to=today.isoformat())
    assert actions(date_to=(today - timedelta(days=1)).isoformat()) == []
    assert actions(date_from=(today + timedelta(days=1)).isoformat()) == []
    # Each read was recorded with the filters it used.
    last = AuditEvent.objects.for_tenant(tenant).order_by("-seq").first()
    assert last.action == "audit.viewed" and "date_from" in last.detail["filters"]


def test_bad_date_range_is_a_clear_400(tenant, owner_client):
    response = owner_client.get(audit_url(tenant), {"date_from": "2025-02-01", "date_to": "2025-01-01"})
    assert response.status_code == 400
    assert "start date is after the end date" in response.content.decode()
    response = owner_client.get(audit_url(tenant), {"date_from": "yesterday"})
    assert response.status_code == 400


def test_pages_are_stable_although_reading_appends(tenant, owner_client):
    for i in range(PAGE_SIZE + 5):
        record(tenant, "study.viewed", obj=("study", str(i)))
    first = owner_client.get(audit_url(tenant), {"action": "study.viewed"})
    first_seqs = seqs_on_page(first)
    assert len(first_seqs) == PAGE_SIZE
    older = first.context["older_before"]
    assert older == first_seqs[-1]
    second = owner_client.get(audit_url(tenant), {"action": "study.viewed", "before": older})
    second_seqs = seqs_on_page(second)
    assert len(second_seqs) == 5 and max(second_seqs) < min(first_seqs)
    assert second.context["older_before"] is None
    assert "before=" in first.content.decode()  # the "Older" link is on the page


def read_csv(response):
    assert response.streaming
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_export_streams_the_filtered_log_and_is_audited(tenant, owner_client):
    record(tenant, "study.viewed", detail={"patient_name": "DOE^JANE"})
    record(tenant, "share.created", label="=HYPERLINK(\"http://evil\")")
    response = owner_client.get(audit_url(tenant, "clinic:audit_export"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'attachment; filename="audit-acme-' in response["Content-Disposition"]
    rows = read_csv(response)
    actions = [r["action"] for r in rows]
    # Newest first, ending with the clinic's creation, starting with this very export.
    assert actions[0] == "audit.exported" and actions[-1] == "tenant.created"
    assert [int(r["seq"]) for r in rows] == list(range(len(rows), 0, -1))
    viewed = next(r for r in rows if r["action"] == "study.viewed")
    assert '"patient_name": "DOE^JANE"' in viewed["detail"]
    stored = AuditEvent.objects.for_tenant(tenant).get(seq=int(viewed["seq"]))
    assert viewed["hash"] == stored.hash  # so the clinic can check the chain outside
    formula = next(r for r in rows if r["action"] == "share.created")
    assert formula["actor_label"].startswith("'=")  # no live formula in a spreadsheet

    filtered = read_csv(owner_client.get(audit_url(tenant, "clinic:audit_export"),
                                         {"action": "share."}))
    assert [r["action"] for r in filtered] == ["share.created"]
    exported = AuditEvent.objects.for_tenant(tenant).filter(action="audit.exported").order_by("seq")
    assert [e.detail["filters"] for e in exported] == [{}, {"action": "share."}]


def test_export_link_carries_the_filters(tenant, owner_client):
    response = owner_client.get(audit_url(tenant), {"action": "share.", "actor": "bob"})
    assert f'{audit_url(tenant, "clinic:audit_export")}?action=share.&amp;actor=bob' in response.content.decode()


@pytest.mark.parametrize("name", ["clinic:audit", "clinic:audit_export"])
def test_roles_without_view_audit_get_403(tenant, make_member, login, name):
    for role in (roles.RADIOLOGIST, roles.TECHNOLOGIST, roles.VIEWER):
        client = login(make_member(tenant, role))
        assert client.get(audit_url(tenant, name)).status_code == 403
    assert not AuditEvent.objects.for_tenant(tenant).filter(action__startswith="audit.").exists()


@pytest.mark.parametrize("name", ["clinic:audit", "clinic:audit_export"])
def test_admin_may_read(tenant, make_member, login, name):
    client = login(make_member(tenant, roles.ADMIN))
    assert client.get(audit_url(tenant, name)).status_code == 200


@pytest.mark.parametrize("name", ["clinic:audit", "clinic:audit_export"])
def test_other_clinic_gets_404_and_no_rows(tenant, other_tenant, login, client, make_token, name):
    from tests.conftest import tenant_owner

    record(tenant, "study.viewed", detail={"patient_name": "DOE^JANE"})
    login(tenant_owner(other_tenant))
    response = client.get(audit_url(tenant, name))
    assert response.status_code == 404
    assert b"DOE^JANE" not in response.content
    client.logout()
    token = make_token(other_tenant)
    assert client.get(audit_url(tenant, name), HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 404


def test_api_token_of_the_clinic_cannot_read_the_log(tenant, client, make_token):
    token = make_token(tenant, scopes=("upload", "read"))
    response = client.get(audit_url(tenant, "clinic:audit_export"), HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 403
