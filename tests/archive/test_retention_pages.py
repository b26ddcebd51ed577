"""Retention pages: the policy settings page and the past-retention report (wiring,
permissions, audit). The rules themselves are tested in test_retention_policy/services."""

from datetime import date

import pytest
from django.test import Client
from django.urls import reverse

from archive.retention.models import StudyRetention
from archive.retention.services import policy_get
from tenants import roles
from tenants.audit import AuditEvent
from tests.archive.retention_helpers import ingest_series, past, tier1  # noqa: F401
from tests.archive.study_rows import make_study

pytestmark = pytest.mark.usefixtures("tier1")


def url(name, tenant):
    return reverse(f"archive:{name}", kwargs={"tenant_slug": tenant.slug})


def test_admin_changes_the_policy_and_dates_are_recomputed(tenant, owner, login):
    client = login(owner)
    study = ingest_series(tenant, study_date="20100115")
    response = client.get(url("retention_settings", tenant))
    assert response.status_code == 200 and b'value="7"' in response.content and b'value="10"' in response.content
    response = client.post(url("retention_settings", tenant),
                           {"adult_years": "9", "minor_years": "7", "mammography_years": "10"}, follow=True)
    assert b"retention dates of 1 studies were recomputed" in response.content
    assert policy_get(tenant=tenant).adult_years == 9
    assert StudyRetention.objects.for_tenant(tenant).get(study=study).retain_until == date(2019, 1, 15)
    assert AuditEvent.objects.for_tenant(tenant).filter(action="retention.policy_changed").count() == 1


@pytest.mark.parametrize("bad", ["0", "101", "-3", "seven", ""])
def test_bad_policy_values_are_refused(tenant, owner, login, bad):
    response = login(owner).post(url("retention_settings", tenant),
                                 {"adult_years": bad, "minor_years": "7", "mammography_years": "10"})
    assert response.status_code == 400
    assert policy_get(tenant=tenant).adult_years == 7
    assert not AuditEvent.objects.for_tenant(tenant).filter(action="retention.policy_changed").exists()


@pytest.mark.parametrize("role", [roles.RADIOLOGIST, roles.TECHNOLOGIST, roles.VIEWER])
def test_staff_cannot_see_or_change_the_policy_or_report(tenant, make_member, login, role):
    client = login(make_member(tenant, role))
    assert client.get(url("retention_settings", tenant)).status_code == 403
    assert client.post(url("retention_settings", tenant), {"adult_years": "1", "minor_years": "1",
                                                           "mammography_years": "1"}).status_code == 403
    assert client.get(url("retention_report", tenant)).status_code == 403
    assert policy_get(tenant=tenant).adult_years == 7


def test_api_token_cannot_use_the_pages(tenant, make_token):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {make_token(tenant)}")
    assert client.get(url("retention_report", tenant)).status_code == 403
    assert client.get(url("retention_settings", tenant)).status_code == 403


def test_report_lists_past_retention_studies_paginated_and_audited(tenant, owner, login, settings):
    client = login(owner)
    ingest_series(tenant, study_date=past(8), patient_name="Oldman^Otto")
    ingest_series(tenant, study_date=past(2), patient_name="Newman^Nina")
    for i in range(55):
        make_study(tenant, patient_id=f"P{i}", name=f"Legacy^L{i}", study_date=past(30))
    response = client.get(url("retention_report", tenant))
    body = response.content.decode()
    assert response.status_code == 200
    assert "56 studies past retention" in body and "Page 1 of 2" in body
    assert "Newman" not in body
    page2 = client.get(url("retention_report", tenant) + "?page=2").content.decode()
    assert "OLDMAN" in page2.upper() and "Newman" not in page2  # the newest past-retention study is last
    events = AuditEvent.objects.for_tenant(tenant).filter(action="retention.report_viewed")
    assert [e.detail["page"] for e in events.order_by("seq")] == [1, 2]
