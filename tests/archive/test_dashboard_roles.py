"""Each role's dashboard shows its own work: everyone the newest studies, one click from
their images; a radiologist what waits for reading; the front desk the recent shares; a
technologist how modalities connect; admins also the members and billing. Nobody sees
connection details that are not theirs to use, and the page's patient names are audited."""

import pytest
from django.test import Client
from django.urls import reverse

from archive.reports import services as reports
from archive.sharing.services import share_create
from tenants import roles
from tenants.audit import Actor, AuditEvent
from tests.archive.retention_helpers import ingest_series, past, tier1  # noqa: F401

pytestmark = pytest.mark.usefixtures("tier1")


@pytest.fixture
def clinic(tenant, owner):
    unread = ingest_series(tenant, study_date=past(0), n=1, patient_name="Unread^Una", patient_id="P-UNA")
    signed = ingest_series(tenant, study_date=past(0), n=1, patient_name="Signed^Sam", patient_id="P-SAM", seed=3)
    reports.draft_save(study=signed, user=owner, findings="Normal.", impression="Normal.", actor=Actor.system("t"))
    reports.draft_sign(study=signed, user=owner, actor=Actor.system("t"))
    share_create(tenant=tenant, study=signed, actor=Actor.system("t"), access_code="12345678",
                 recipient_name="Dr Referrer Rex")
    return unread, signed


def dashboard(login, user, tenant) -> str:
    client = login(user, the_client=Client())
    response = client.get(reverse("clinic:dashboard", kwargs={"tenant_slug": tenant.slug}))
    assert response.status_code == 200
    return response.content.decode()


def test_viewer_finds_images_and_no_connection_details(tenant, make_member, login, clinic):
    unread, _ = clinic
    body = dashboard(login, make_member(tenant, roles.VIEWER), tenant)
    viewer_url = reverse("archive:viewer_open", kwargs={"tenant_slug": tenant.slug, "pk": unread.pk})
    assert "Unread, Una" in body and f'href="{viewer_url}"' in body  # one click to the images
    assert 'id="dicom-ae"' not in body and "Connect a modality" not in body
    assert 'id="reading"' not in body and "Dr Referrer Rex" not in body and 'id="billing-summary"' not in body


def test_front_desk_sees_uploads_and_shares(tenant, make_member, login, clinic):
    body = dashboard(login, make_member(tenant, roles.FRONT_DESK), tenant)
    assert "Recently received" in body and "Signed, Sam" in body
    assert "Recent shares" in body and "Dr Referrer Rex" in body
    assert 'id="dicom-ae"' not in body and 'id="members-summary"' not in body


def test_radiologist_sees_what_waits_for_reading(tenant, make_member, login, clinic):
    unread, _ = clinic
    doctor = make_member(tenant, roles.RADIOLOGIST)
    reports.assign(study=unread, assignee=doctor, actor=Actor.system("t"))
    body = dashboard(login, doctor, tenant)
    reading = body[body.index('id="reading"'):body.index('id="recent"')]
    assert "Unread, Una" in reading and "Signed, Sam" not in reading
    assert 'id="stat-unread">1<' in reading and 'id="stat-mine">1<' in reading
    assert 'id="dicom-ae"' not in body


def test_technologist_sees_how_modalities_connect(tenant, make_member, login, clinic):
    body = dashboard(login, make_member(tenant, roles.TECHNOLOGIST), tenant)
    assert f'id="dicom-ae">{tenant.ae_title}<' in body
    assert "create one" not in body and "manage</a>" not in body  # tokens and peers are an admin's


def test_admin_sees_connections_members_and_billing(tenant, make_member, login, clinic):
    body = dashboard(login, make_member(tenant, roles.ADMIN), tenant)
    assert 'id="dicom-ae"' in body and "create one" in body
    assert 'id="members-summary"' in body and "2 members" in body
    assert 'id="billing-summary"' in body and "This month: 2 studies" in body and "No card on file" in body


def test_the_dashboard_audits_its_patient_names(tenant, make_member, login, clinic):
    viewer = make_member(tenant, roles.VIEWER)
    dashboard(login, viewer, tenant)
    [event] = AuditEvent.objects.for_tenant(tenant).filter(action="dashboard.viewed")
    assert event.actor_label == viewer.email and event.detail["recent"] == 2
