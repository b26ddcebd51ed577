"""The clinic dashboard: archive counts of this clinic only, DICOM connection details, and
links only to what the member's role may open; a few cheap queries whatever the size."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from archive.gateway.models import DicomPeer
from tenants import roles
from tests.archive.retention_helpers import ingest_series, tier1  # noqa: F401 (fixture)


@pytest.mark.django_db
def test_counts_connection_details_and_pending_archive_work(client, login, tenant, other_tenant, owner,
                                                            settings, tier1):  # noqa: F811
    settings.DICOM_HOST, settings.DICOM_PORT = "dicom.example.test", 104
    ingest_series(tenant, 3)
    ingest_series(tenant, 2, seed=1)
    ingest_series(other_tenant, 4, seed=2)  # another clinic's: never counted here
    DicomPeer.objects.for_tenant(tenant).create(ae_title="CT_ROOM2")
    login(owner)

    response = client.get("/t/acme/")
    assert response.status_code == 200
    summary = response.context["summary"]
    assert (summary.studies, summary.instances, summary.archive_pending) == (2, 5, 5)
    html = response.content.decode()
    assert '<dd id="stat-studies">2</dd>' in html and '<dd id="stat-pending">5</dd>' in html
    assert "not yet copied to both storage regions" in html
    assert f'<code id="dicom-ae">{tenant.ae_title}</code>' in html
    assert '<code id="dicom-host">dicom.example.test</code>' in html and '<code id="dicom-port">104</code>' in html
    assert "<code>CT_ROOM2</code>" in html
    assert '<code id="dicomweb-url">http://testserver/t/acme/dicomweb</code>' in html


@pytest.mark.django_db
def test_a_few_queries_however_many_studies(client, login, tenant, owner, tier1):  # noqa: F811
    login(owner)
    client.get("/t/acme/")  # warm: session, OTP device
    with CaptureQueriesContext(connection) as empty:
        client.get("/t/acme/")
    for seed in range(3):
        ingest_series(tenant, 2, seed=seed)
    with CaptureQueriesContext(connection) as full:
        client.get("/t/acme/")
    assert len(full) == len(empty)


@pytest.mark.django_db
@pytest.mark.parametrize("role, shown, hidden", [
    (roles.OWNER, ["/upload/", "/studies/", "/members/", "/settings/tokens/", "/audit/", "/settings/",
                   "/settings/retention/", "/retention/", "/deletions/"], []),
    (roles.TECHNOLOGIST, ["/upload/", "/studies/"],
     ["/members/", "/settings/tokens/", "/audit/", "/settings/", "/retention/", "/deletions/"]),
    (roles.VIEWER, ["/studies/"], ["/upload/", "/members/", "/audit/", "/deletions/", "/retention/"]),
])
def test_links_follow_the_role(request, client, login, tenant, make_member, role, shown, hidden):
    user = request.getfixturevalue("owner") if role == roles.OWNER else make_member(tenant, role)
    login(user)
    html = client.get("/t/acme/").content.decode()
    for path in shown:
        assert f'href="/t/acme{path}"' in html, path
    for path in hidden:
        assert f'href="/t/acme{path}"' not in html, path


@pytest.mark.django_db
def test_api_tokens_get_no_dashboard(client, tenant, make_token):
    """The dashboard is for members; a script's token is refused."""
    raw = make_token(tenant, ["upload"])
    response = client.get("/t/acme/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 403
