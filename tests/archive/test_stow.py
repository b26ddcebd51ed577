"""STOW-RS over real HTTP (pytest-django's live server, `requests`): status codes, the
PS3.18 response body, and bad input that must leave nothing behind."""

import io
import json

import pydicom
import pytest
import requests
from django.core.handlers.wsgi import WSGIRequest

from archive.dicomweb.stow import DUPLICATE_SOP_INSTANCE, request_stream
from archive.ingest import errors
from archive.models import Instance, Study
from tenants import roles
from tenants.audit import Actor, AuditEvent
from tenants.models import ApiToken
from tenants.services import api_token_revoke
from tests.archive.stow_helpers import assert_nothing_stored, files_under, multipart, private_dirs  # noqa: F401
from tests.dicom_factory import make_ct_series, to_bytes

pytestmark = pytest.mark.usefixtures("private_dirs")


@pytest.fixture
def stow(live_server, tenant, make_token):
    token = make_token(tenant, scopes=("upload",))

    def post(body: bytes, content_type: str, *, study: str | None = None, secret: str | None = None,
             slug: str = "acme"):
        url = f"{live_server.url}/t/{slug}/dicomweb/studies" + (f"/{study}" if study else "")
        return requests.post(url, data=body, timeout=60, headers={
            "Content-Type": content_type, "Accept": "application/dicom+json",
            "Authorization": f"Bearer {secret or token}"})

    post.token = token
    return post


def dataset(response) -> pydicom.Dataset:
    assert response.headers["Content-Type"] == "application/dicom+json"
    return pydicom.Dataset.from_json(response.json())


def failure_codes(response) -> list[int]:
    return [item.FailureReason for item in dataset(response).get("FailedSOPSequence", [])]


def test_store_series_200_with_references(stow, tenant, live_server):
    series = make_ct_series(3, 16, 16)
    study_uid = series[0].StudyInstanceUID
    response = stow(*multipart([to_bytes(ds) for ds in series]))
    assert response.status_code == 200, response.text
    ds = dataset(response)
    base = f"{live_server.url}/t/acme/dicomweb/studies/{study_uid}"
    assert ds.RetrieveURL == base
    assert "FailedSOPSequence" not in ds
    refs = {item.ReferencedSOPInstanceUID: item for item in ds.ReferencedSOPSequence}
    assert set(refs) == {s.SOPInstanceUID for s in series}
    first = refs[series[0].SOPInstanceUID]
    assert first.ReferencedSOPClassUID == series[0].SOPClassUID
    assert first.RetrieveURL == f"{base}/series/{series[0].SeriesInstanceUID}/instances/{series[0].SOPInstanceUID}"
    study = Study.objects.for_tenant(tenant).get(study_instance_uid=study_uid)
    assert study.num_instances == 3
    event = AuditEvent.objects.for_tenant(tenant).filter(action="dicomweb.stow").get()
    assert event.detail["stored"] == 3 and event.detail["studies"] == [study_uid]
    assert "Doe" not in json.dumps(event.detail)
    assert event.actor_type == AuditEvent.TOKEN


def test_duplicate_is_success_and_stored_once(stow, tenant):
    data = to_bytes(make_ct_series(1, 8, 8)[0])
    assert stow(*multipart([data])).status_code == 200
    again = stow(*multipart([data, data]))
    assert again.status_code == 200
    assert len(dataset(again).ReferencedSOPSequence) == 2
    assert Instance.objects.for_tenant(tenant).count() == 1


def test_same_uid_other_content_is_refused_first_copy_kept(stow, tenant):
    ds = make_ct_series(1, 8, 8)[0]
    assert stow(*multipart([to_bytes(ds)])).status_code == 200
    sha = Instance.objects.for_tenant(tenant).get().sha256
    ds.SeriesDescription = "changed"
    response = stow(*multipart([to_bytes(ds)]))
    assert response.status_code == 409
    assert failure_codes(response) == [DUPLICATE_SOP_INSTANCE]
    assert Instance.objects.for_tenant(tenant).get().sha256 == sha


def test_study_uid_mismatch(stow, tenant, settings):
    ds = make_ct_series(1, 8, 8)[0]
    response = stow(*multipart([to_bytes(ds)]), study="1.2.826.0.1.3680043.8.498.1")
    assert response.status_code == 409
    failed = dataset(response).FailedSOPSequence[0]
    assert failed.FailureReason == errors.STUDY_UID_MISMATCH
    assert failed.ReferencedSOPInstanceUID == ds.SOPInstanceUID
    assert_nothing_stored(tenant, settings)


def test_mixed_request_is_202(stow, tenant):
    series = make_ct_series(2, 8, 8)
    other = make_ct_series(1, 8, 8)[0]
    response = stow(*multipart([to_bytes(series[0]), to_bytes(other), to_bytes(series[1])]),
                    study=series[0].StudyInstanceUID)
    assert response.status_code == 202
    ds = dataset(response)
    assert len(ds.ReferencedSOPSequence) == 2 and len(ds.FailedSOPSequence) == 1
    assert ds.to_json_dict() == response.json()  # the body is DICOM JSON as pydicom writes it
    assert ds.RetrieveURL.endswith(f"/studies/{series[0].StudyInstanceUID}")
    assert not Study.objects.for_tenant(tenant).filter(study_instance_uid=other.StudyInstanceUID).exists()


def _without_uid(keyword: str) -> bytes:
    ds = make_ct_series(1, 8, 8)[0]
    delattr(ds, keyword)
    return to_bytes(ds)


@pytest.mark.parametrize("part, code, reason", [
    (b"plain text, not DICOM" * 20, errors.CANNOT_UNDERSTAND, "not a DICOM file"),
    (to_bytes(make_ct_series(1, 32, 32)[0])[:1500], errors.CANNOT_UNDERSTAND, "truncated"),
    (_without_uid("SOPInstanceUID"), errors.DATASET_DOES_NOT_MATCH_SOP_CLASS, "SOPInstanceUID"),
    (_without_uid("StudyInstanceUID"), errors.DATASET_DOES_NOT_MATCH_SOP_CLASS, "StudyInstanceUID"),
    (("image/jpeg", b"\xff\xd8\xff"), errors.CANNOT_UNDERSTAND, "image/jpeg"),
], ids=["not-dicom", "truncated", "no-sop-uid", "no-study-uid", "wrong-part-type"])
def test_bad_parts_fail_and_leave_nothing(stow, tenant, settings, part, code, reason):
    response = stow(*multipart([part]))
    assert response.status_code == 409
    item = dataset(response).FailedSOPSequence[0]
    assert item.FailureReason == code
    assert reason in item[0x0009, 0x1001].value
    assert_nothing_stored(tenant, settings)


def test_oversize_part_fails_rest_is_stored(stow, tenant, settings):
    small, big = make_ct_series(1, 8, 8)[0], make_ct_series(1, 64, 64)[0]
    settings.INGEST_MAX_INSTANCE_BYTES = len(to_bytes(small)) + 100
    response = stow(*multipart([to_bytes(big), to_bytes(small)]))
    assert response.status_code == 202
    ds = dataset(response)
    assert ds.FailedSOPSequence[0].FailureReason == errors.OUT_OF_RESOURCES
    assert [i.ReferencedSOPInstanceUID for i in ds.ReferencedSOPSequence] == [small.SOPInstanceUID]
    assert list(Instance.objects.for_tenant(tenant).values_list("sop_instance_uid", flat=True)) == [
        small.SOPInstanceUID]
    assert files_under(settings.INGEST_TMP_DIR) == []


def test_malformed_body_is_400_and_stores_nothing(stow, tenant, settings):
    body, ctype = multipart([to_bytes(ds) for ds in make_ct_series(2, 8, 8)], close=False)
    response = stow(body[:-10], ctype)
    assert response.status_code == 400
    assert "nothing was stored" in response.json()["error"]
    assert_nothing_stored(tenant, settings)


def test_body_without_the_boundary_is_400(stow, tenant, settings):
    _, ctype = multipart([])
    response = stow(to_bytes(make_ct_series(1, 8, 8)[0]), ctype)
    assert response.status_code == 400
    assert_nothing_stored(tenant, settings)


@pytest.mark.parametrize("ctype", [
    "application/dicom", "multipart/form-data; boundary=x",
    'multipart/related; type="application/dicom+xml"; boundary=x', "text/plain",
])
def test_wrong_request_content_type_is_415(stow, tenant, settings, ctype):
    body, _ = multipart([to_bytes(make_ct_series(1, 8, 8)[0])], boundary="x")
    assert stow(body, ctype).status_code == 415
    assert_nothing_stored(tenant, settings)


@pytest.mark.parametrize("ctype", [
    "multipart/related; type=application/dicom; boundary=XyZ",
    "multipart/related; boundary=XyZ",
    'multipart/related; type="application/dicom"; boundary="XyZ"',
])
def test_type_parameter_quoted_unquoted_or_missing(stow, ctype):
    body, _ = multipart([(None, to_bytes(make_ct_series(1, 8, 8)[0]))], boundary="XyZ")
    assert stow(body, ctype).status_code == 200


def test_read_only_token_is_403(stow, tenant, make_token, settings):
    body, ctype = multipart([to_bytes(make_ct_series(1, 8, 8)[0])])
    assert stow(body, ctype, secret=make_token(tenant, scopes=("read",))).status_code == 403
    assert_nothing_stored(tenant, settings)


def test_revoked_token_is_401(stow, tenant, settings):
    api_token_revoke(token=ApiToken.find(stow.token), actor=Actor.system("test"))
    body, ctype = multipart([to_bytes(make_ct_series(1, 8, 8)[0])])
    assert stow(body, ctype).status_code == 401
    assert_nothing_stored(tenant, settings)


def test_other_clinics_token_is_404(stow, tenant, other_tenant, make_token, settings):
    body, ctype = multipart([to_bytes(make_ct_series(1, 8, 8)[0])])
    assert stow(body, ctype, secret=make_token(other_tenant, scopes=("upload",))).status_code == 404
    assert_nothing_stored(tenant, settings)
    assert_nothing_stored(other_tenant, settings)


def test_chunked_body_refused_by_a_server_that_does_not_dechunk(stow, live_server, tenant, settings):
    # Django's own (live/dev) server passes chunked bodies through undecoded; answer 411
    # instead of reading garbage. gunicorn de-chunks (see the next test).
    body, ctype = multipart([to_bytes(make_ct_series(1, 8, 8)[0])])
    response = requests.post(f"{live_server.url}/t/acme/dicomweb/studies", data=iter([body]),
                             headers={"Content-Type": ctype, "Authorization": f"Bearer {stow.token}"},
                             timeout=30)
    assert response.status_code == 411
    assert_nothing_stored(tenant, settings)


def test_dechunked_input_is_read_to_its_end():
    # What gunicorn hands over for a chunked request: no CONTENT_LENGTH, a de-chunked
    # wsgi.input and wsgi.input_terminated set (a WSGI environ, as gunicorn builds it).
    data = b"x" * 5000
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/", "wsgi.input": io.BytesIO(data),
               "wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked",
               "SERVER_NAME": "testserver", "SERVER_PORT": "80", "wsgi.url_scheme": "http"}
    assert request_stream(WSGIRequest(environ)).read() == data


def test_session_member_needs_csrf_and_upload_permission(tenant, make_member, client, login, settings):
    from django.test import Client

    body, ctype = multipart([to_bytes(make_ct_series(1, 8, 8)[0])])
    csrf_client = Client(enforce_csrf_checks=True)
    login(make_member(tenant, roles.TECHNOLOGIST), the_client=csrf_client)
    csrf_client.get(f"/t/{tenant.slug}/")  # sets the CSRF cookie
    url = f"/t/{tenant.slug}/dicomweb/studies"
    assert csrf_client.post(url, body, content_type=ctype).status_code == 403
    token = csrf_client.cookies["csrftoken"].value
    response = csrf_client.post(url, body, content_type=ctype, headers={"X-CSRFToken": token})
    assert response.status_code == 200
    viewer = Client()
    login(make_member(tenant, roles.VIEWER), the_client=viewer)
    assert viewer.post(url, body, content_type=ctype, headers={"Accept": "application/json"}).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_one_image_request_is_one_transaction_with_its_audit_event(client, tenant, make_token):
    """The request's own audit event goes in the index transaction of its instances: one
    commit per one-image STOW (it was two, and one-image studies are what X-ray and
    ultrasound practices send, one per request)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tenants.audit import audit_verify

    token = make_token(tenant, scopes=("upload",))
    commits = []
    for _ in range(2):  # the first also makes the clinic's data key and records the token's use
        instance = make_ct_series(1, 16, 16)[0]
        body, content_type = multipart([to_bytes(instance)])
        with CaptureQueriesContext(connection) as queries:
            response = client.post("/t/acme/dicomweb/studies", data=body, content_type=content_type,
                                   HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_ACCEPT="application/dicom+json")
        assert response.status_code == 200, response.content
        # Statements sent together in one call (archive/ingest/new_study.py) count one by one.
        sent = [q["sql"].decode() if isinstance(q["sql"], bytes) else q["sql"] for q in queries.captured_queries]
        commits.append(sum(part.strip() == "COMMIT" for sql in sent for part in sql.split(";")))
    assert commits[1] == 1
    events = list(AuditEvent.objects.for_tenant(tenant).filter(action__in=["dicomweb.stow", "study.created"])
                  .order_by("seq").values_list("action", "detail"))
    assert [action for action, _ in events] == ["study.created", "dicomweb.stow"] * 2
    assert events[-1][1] == {"status": 200, "stored": 1, "already_present": 0, "failed": 0,
                             "studies": [instance.StudyInstanceUID]}
    assert audit_verify(tenant=tenant) == []


def test_request_that_stores_nothing_new_is_audited_too(stow, tenant):
    data = to_bytes(make_ct_series(1, 8, 8)[0])
    assert stow(*multipart([data])).status_code == 200
    assert stow(*multipart([data])).status_code == 200  # already present: no index transaction
    assert stow(*multipart([b"not dicom"])).status_code == 409
    details = [e.detail for e in AuditEvent.objects.for_tenant(tenant).filter(action="dicomweb.stow").order_by("seq")]
    assert [(d["status"], d["stored"], d["already_present"], d["failed"]) for d in details] == [
        (200, 1, 0, 0), (200, 0, 1, 0), (409, 0, 0, 1)]
