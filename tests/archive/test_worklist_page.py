"""The worklist page: wiring, permissions, searches kept out of URLs, paging, audit."""

import re

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tenants import roles
from tenants.audit import AuditEvent
from tests.archive.study_rows import make_study


def url(tenant) -> str:
    return reverse("archive:worklist", kwargs={"tenant_slug": tenant.slug})


def viewer_client(client, login, make_member, tenant):
    return login(make_member(tenant, roles.VIEWER))


def test_lists_the_clinics_studies_and_audits(client, login, make_member, tenant, other_tenant):
    make_study(tenant, name="Doe^Jane", patient_id="MRN-7", study_date="20240131", modalities="CT\\SR")
    make_study(other_tenant, name="Secret^Other", patient_id="OTHER-1")
    c = viewer_client(client, login, make_member, tenant)
    response = c.get(url(tenant))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Doe, Jane" in body and "MRN-7" in body and "2024-01-31" in body and "CT, SR" in body
    assert "Secret" not in body and "OTHER-1" not in body
    event = AuditEvent.objects.for_tenant(tenant).get(action="worklist.viewed")
    assert event.detail["shown"] == 1 and event.detail["via"] == "web"


def test_search_is_posted_and_the_url_carries_no_phi(client, login, make_member, tenant):
    jane = make_study(tenant, name="Doe^Jane", patient_id="MRN-1")
    make_study(tenant, name="Roe^Richard", patient_id="MRN-2")
    c = viewer_client(client, login, make_member, tenant)
    response = c.post(url(tenant), {"name": "doe jane", "patient_id": "MRN-1", "sort": "name"})
    assert response.status_code == 302
    location = response["Location"]
    assert re.fullmatch(rf"{url(tenant)}\?s=[\w-]+&sort=name", location)
    assert "doe" not in location.lower() and "MRN" not in location
    page = c.get(location)
    body = page.content.decode()
    assert "Doe, Jane" in body and "Richard" not in body
    assert f"/studies/{jane.pk}/" in body
    # The audit log records what was searched (it is the clinic's own PHI record).
    event = AuditEvent.objects.for_tenant(tenant).filter(action="worklist.viewed").first()
    assert event.detail["filters"] == {"name": "doe jane", "patient_id": "MRN-1"}
    assert event.detail["sort"] == "name"


def test_more_filters_open_when_one_is_used(client, login, make_member, tenant):
    make_study(tenant, accession="A-1")
    c = viewer_client(client, login, make_member, tenant)
    assert '<details class="wl-more">' in c.get(url(tenant)).content.decode()
    location = c.post(url(tenant), {"accession": "A-1"})["Location"]
    assert '<details class="wl-more" open>' in c.get(location).content.decode()


def test_invalid_search_is_refused(client, login, make_member, tenant):
    c = viewer_client(client, login, make_member, tenant)
    response = c.post(url(tenant), {"date_from": "2024-02-01", "date_to": "2024-01-01"})
    assert response.status_code == 400
    assert "start date is after the end date" in response.content.decode()
    assert "worklist_searches" not in c.session


def test_unknown_search_key_shows_everything_and_says_so(client, login, make_member, tenant):
    make_study(tenant, name="Doe^Jane")
    c = viewer_client(client, login, make_member, tenant)
    response = c.get(url(tenant) + "?s=nosuchkey")
    body = response.content.decode()
    assert response.status_code == 200 and "search has expired" in body and "Doe, Jane" in body


def test_paging_with_more_link(client, login, make_member, tenant):
    studies = [make_study(tenant, patient_id=str(i), study_date=f"202401{i + 1:02d}") for i in range(53)]
    c = viewer_client(client, login, make_member, tenant)
    first = c.get(url(tenant)).content.decode()
    assert first.count('<td class="patient">') == 50
    more = re.search(r'href="([^"]+)" rel="next"', first)
    assert more, "a full page links to more studies"
    second = c.get(more.group(1).replace("&amp;", "&")).content.decode()
    assert second.count('<td class="patient">') == 3
    assert 'rel="next"' not in second and "First page" in second
    assert f"/studies/{studies[0].pk}/" in second  # the oldest is on the last page


def test_no_query_per_row(client, login, make_member, tenant):
    c = viewer_client(client, login, make_member, tenant)
    make_study(tenant, patient_id="first")
    c.get(url(tenant))  # warm session/2FA bookkeeping
    with CaptureQueriesContext(connection) as one:
        assert c.get(url(tenant)).status_code == 200
    for i in range(30):
        make_study(tenant, patient_id=str(i))
    with CaptureQueriesContext(connection) as many:
        assert c.get(url(tenant)).status_code == 200
    assert len(many) == len(one)
    study_queries = [q["sql"] for q in many if "archive_study" in q["sql"]]
    assert len(study_queries) == 1 and "COUNT(" not in study_queries[0].upper()


def test_isolation_and_permissions(client, login, make_member, make_token, tenant, other_tenant):
    assert client.get(url(tenant)).status_code == 302  # anonymous: to the login page
    login(make_member(other_tenant, roles.RADIOLOGIST))
    assert client.get(url(tenant)).status_code == 404
    upload_only = make_token(tenant, scopes=["upload"])
    assert client.get(url(tenant), HTTP_AUTHORIZATION=f"Bearer {upload_only}").status_code == 403


def test_nav_links_to_the_worklist(client, login, make_member, tenant):
    c = viewer_client(client, login, make_member, tenant)
    body = c.get(reverse("clinic:dashboard", kwargs={"tenant_slug": tenant.slug})).content.decode()
    assert f'href="{url(tenant)}"' in body
