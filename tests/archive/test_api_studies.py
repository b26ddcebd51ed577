"""The clinic REST API: studies search, study with series, storage state; scopes; isolation."""

from django.urls import reverse

from tenants import roles
from tenants.audit import AuditEvent
from tests.archive.study_rows import ingest_study, make_study


def api(tenant, name="api_study_list", **kwargs) -> str:
    return reverse(f"archive:{name}", kwargs={"tenant_slug": tenant.slug, **kwargs})


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def test_search_with_a_read_token(client, make_token, tenant, other_tenant):
    jane = make_study(tenant, name="Doe^Jane", patient_id="MRN-1", modalities="CT\\SR", accession="A1")
    make_study(tenant, name="Roe^Richard", patient_id="MRN-2")
    make_study(other_tenant, name="Doe^Jane", patient_id="MRN-1")
    auth = bearer(make_token(tenant, scopes=["read"]))
    response = client.get(api(tenant), {"name": "jane", "modality": "ct"}, **auth)
    assert response.status_code == 200, response.content
    body = response.json()
    assert [s["id"] for s in body["results"]] == [jane.pk] and body["next"] is None
    study = body["results"][0]
    assert study["patient_id"] == "MRN-1" and study["modalities"] == ["CT", "SR"]
    assert study["url"].endswith(api(tenant, "api_study_detail", pk=jane.pk))
    assert len(client.get(api(tenant), **auth).json()["results"]) == 2  # never the other clinic's
    event = AuditEvent.objects.for_tenant(tenant).filter(action="worklist.viewed").first()
    assert event.actor_type == AuditEvent.TOKEN and event.detail["via"] == "api"


def test_next_links_walk_all_pages(client, make_token, tenant):
    made = {make_study(tenant, patient_id=str(i), study_date=f"202402{i + 1:02d}").pk for i in range(7)}
    auth = bearer(make_token(tenant, scopes=["read"]))
    seen, url, pages = [], api(tenant) + "?limit=3&sort=date", 0
    while url:
        body = client.get(url, **auth).json()
        seen += [s["id"] for s in body["results"]]
        url, pages = body["next"], pages + 1
    assert pages == 3 and len(seen) == 7 and set(seen) == made


def test_search_by_post_keeps_phi_out_of_the_url(client, make_token, tenant):
    jane = make_study(tenant, name="Doe^Jane", patient_id="MRN-1")
    others = [make_study(tenant, name=f"Doe^John{i}", patient_id=f"J{i}") for i in range(3)]
    auth = bearer(make_token(tenant, scopes=["read"]))
    search = api(tenant, "api_study_search")
    body = client.post(search, {"name": "jane doe"}, content_type="application/json", **auth).json()
    assert [s["id"] for s in body["results"]] == [jane.pk] and body["next_after"] is None
    seen, after = [], None
    while True:
        page = client.post(search, {"name": "doe", "limit": 3, "after": after},
                           content_type="application/json", **auth).json()
        seen += [s["id"] for s in page["results"]]
        after = page["next_after"]
        if after is None:
            break
    assert sorted(seen) == sorted([jane.pk] + [s.pk for s in others])
    bad = client.post(search, {"date_from": "2024-02-01", "date_to": "2024-01-01"},
                      content_type="application/json", **auth)
    assert bad.status_code == 400
    upload_only = bearer(make_token(tenant, scopes=["upload"]))
    assert client.post(search, {}, content_type="application/json", **upload_only).status_code == 403
    event = AuditEvent.objects.for_tenant(tenant).filter(action="worklist.viewed").last()
    assert event.detail["filters"] == {"name": "jane doe"}


def test_post_search_from_a_session_needs_the_csrf_token(login, make_member, tenant):
    from django.test import Client

    make_study(tenant)
    c = login(make_member(tenant, roles.VIEWER), the_client=Client(enforce_csrf_checks=True))
    search = api(tenant, "api_study_search")
    assert c.post(search, {}, content_type="application/json").status_code == 403
    c.get(reverse("archive:worklist", kwargs={"tenant_slug": tenant.slug}))  # sets the CSRF cookie
    token = c.cookies["csrftoken"].value
    response = c.post(search, {}, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200 and len(response.json()["results"]) == 1


def test_bad_filters_are_400(client, make_token, tenant):
    auth = bearer(make_token(tenant, scopes=["read"]))
    for query in [{"date_from": "2024-02-01", "date_to": "2024-01-01"}, {"modality": "C%"},
                  {"sort": "patient_name"}, {"date_from": "yesterday"}, {"limit": "0"}, {"after": "x"},
                  {"name": "a b c d e"}]:
        response = client.get(api(tenant), query, **auth)
        assert response.status_code == 400, (query, response.content)


def test_study_with_series_and_storage(client, make_token, tenant):
    study = ingest_study(tenant)
    auth = bearer(make_token(tenant, scopes=["read"]))
    body = client.get(api(tenant, "api_study_detail", pk=study.pk), **auth).json()
    assert body["study_instance_uid"] == study.study_instance_uid and body["patient_name"] == "Doe^Jane"
    assert sorted((s["modality"], s["num_instances"]) for s in body["series"]) == [("CT", 3), ("MR", 2)]
    assert sum(s["size_bytes"] for s in body["series"]) == body["size_bytes"] == study.size_bytes
    assert AuditEvent.objects.for_tenant(tenant).filter(action="study.viewed", object_id=str(study.pk)).exists()
    storage = client.get(api(tenant, "api_study_storage", pk=study.pk), **auth).json()
    assert storage["instances"] == 5 and storage["outbox"] == {"pending": 5, "done": 0, "failing": 0}
    assert storage["complete"] is False and storage["source"] in ("copies", "outbox")


def test_a_member_session_works_too(client, login, make_member, tenant):
    study = make_study(tenant)
    c = login(make_member(tenant, roles.VIEWER))
    assert c.get(api(tenant, "api_study_detail", pk=study.pk)).status_code == 200


def test_isolation(client, make_token, login, make_member, tenant, other_tenant):
    theirs = make_study(other_tenant, name="Secret^Patient")
    mine = make_study(tenant)
    my_token = bearer(make_token(tenant, scopes=["read"]))
    for name in ("api_study_detail", "api_study_storage"):
        # Their study id through my clinic: 404, as for an id that does not exist.
        response = client.get(api(tenant, name, pk=theirs.pk), **my_token)
        assert response.status_code == 404 and "Secret" not in response.content.decode()
        assert client.get(api(tenant, name, pk=10**9), **my_token).status_code == 404
        # My token on their clinic's URL: 404.
        assert client.get(api(other_tenant, name, pk=theirs.pk), **my_token).status_code == 404
    assert client.get(api(other_tenant), **my_token).status_code == 404
    # A member of the other clinic on my clinic: 404.
    c = login(make_member(other_tenant, roles.OWNER))
    assert c.get(api(tenant, "api_study_detail", pk=mine.pk)).status_code == 404


def test_scopes_and_anonymous(client, make_token, tenant):
    study = make_study(tenant)
    upload_only = bearer(make_token(tenant, scopes=["upload"]))
    read = bearer(make_token(tenant, scopes=["read"]))
    for url in (api(tenant), api(tenant, "api_study_detail", pk=study.pk),
                api(tenant, "api_study_storage", pk=study.pk)):
        assert client.get(url, **read).status_code == 200
        assert client.get(url, **upload_only).status_code == 403
        assert client.get(url).status_code == 401
        assert client.get(url, **bearer("not-a-token")).status_code == 401
        assert client.post(url, {}, **read).status_code == 405  # read-only API
