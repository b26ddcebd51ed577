"""Every URL a share link opens, walked: with the share's session each answers for the
shared study (and a PHI read writes an audit event with the share as the actor); naming
another study of the same clinic, or another clinic's, is a 404 with nothing of it in the
body; without the session every one is a 404. A new share URL is walked automatically."""

import pytest
from django.test import Client
from django.urls import URLPattern, get_resolver

from archive.reports.services import pdf_attach
from archive.sharing.services import share_create
from tenants.audit import Actor, AuditEvent
from tests.archive.dicomweb_data import ingest_datasets
from tests.conftest import tenant_owner
from tests.dicom_factory import make_ct_series

ROUTES = [p for p in get_resolver().url_patterns if isinstance(p, URLPattern)] + [
    p for r in get_resolver().url_patterns if getattr(r, "namespace", None) == "sharing" for p in r.url_patterns]
SHARE_ROUTES = [p for p in ROUTES if p.name and "public_id" in str(p.pattern)]
# Pages and configuration of the share's viewer: no patient data, so no audit event.
NOT_PHI = {"viewer", "viewer_route", "viewer_config"}


def _instance(tenant, name, pid):
    """A study of one image, with a signed PDF report (version 1)."""
    [ds] = make_ct_series(1, 8, 8, patient_name=name, patient_id=pid)
    [instance] = ingest_datasets(tenant, [ds])
    pdf_attach(study=instance.study, user=tenant_owner(tenant), pdf=b"%PDF-1.4\n%%EOF\n", title="Report",
               actor=Actor.system("test"))
    return {"pk": instance.study_id, "study_uid": ds.StudyInstanceUID, "series_uid": ds.SeriesInstanceUID, "sop_uid": ds.SOPInstanceUID,
            "frame_list": "1", "tag_path": "7FE00010", "rest": "viewer", "number": 1}


def _url(route, public_id, uids) -> str:
    path = "/" + str(route.pattern)
    for key, value in {"public_id": public_id, **uids}.items():
        for conv in ("uuid", "uid", "str", "path", "int"):
            path = path.replace(f"<{conv}:{key}>", str(value))
    return path


@pytest.fixture
def walk(tenant, other_tenant):
    from archive.models import Study

    shared = _instance(tenant, "Shared^Sue", "SHARE-IN")
    other = _instance(tenant, "Hidden^Hal", "SHARE-OUT")
    foreign = _instance(other_tenant, "Foreign^Flo", "SHARE-FOREIGN")
    study = Study.objects.for_tenant(tenant).get(study_instance_uid=shared["study_uid"])
    made = share_create(tenant=tenant, study=study, actor=Actor.system("test"), access_code="12345678",
                        allow_download=True)
    referrer = Client()
    assert referrer.post(f"/s/{made.token}", {"answer": "12345678"}).status_code == 302
    return {"tenant": tenant, "share": made.share, "referrer": referrer, "shared": shared, "other": other,
            "foreign": foreign}


def test_the_walk_covers_the_share_dicomweb_root():
    names = {r.name for r in SHARE_ROUTES}
    assert {"page", "viewer", "viewer_config", "dicomweb_studies", "dicomweb_study", "dicomweb_frames",
            "dicomweb_study_metadata", "dicomweb_bulkdata"} <= names


@pytest.mark.parametrize("route", SHARE_ROUTES, ids=lambda r: r.name)
def test_share_url_reads_only_the_share(route, walk):
    public_id, referrer, tenant = walk["share"].public_id, walk["referrer"], walk["tenant"]
    before = AuditEvent.objects.for_tenant(tenant).order_by("-seq").values_list("seq", flat=True).first()
    response = referrer.get(_url(route, public_id, walk["shared"]))
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert 200 <= response.status_code < 300, (route.name, response.status_code, body[:200])
    if route.name not in NOT_PHI:
        events = AuditEvent.objects.for_tenant(tenant).filter(seq__gt=before)
        assert [e.actor_type for e in events] == ["share"], route.name
    if "study_uid" in str(route.pattern) or "<int:pk>" in str(route.pattern):
        for outside, marker in ((walk["other"], b"Hal"), (walk["foreign"], b"Flo")):
            response = referrer.get(_url(route, public_id, outside))
            assert response.status_code == 404, (route.name, response.status_code)
            assert marker not in response.content
    stranger = Client()
    assert stranger.get(_url(route, public_id, walk["shared"])).status_code == 404
