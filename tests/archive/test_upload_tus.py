"""The tus 1.0 core: create, offset, resume, completion, protocol errors, isolation."""

import socket
import time
from urllib.parse import urlsplit

import pytest

from archive.models import Instance
from tenants import roles
from tests.archive.upload_helpers import TUS, TusClient, upload_dirs  # noqa: F401
from tests.dicom_factory import make_ct_series, to_bytes

pytestmark = pytest.mark.usefixtures("upload_dirs")


@pytest.fixture
def tus(client, tenant, make_member, login):
    login(make_member(tenant, roles.TECHNOLOGIST))
    return TusClient(client, tenant.slug)


def test_options_advertises_the_protocol(tus):
    response = tus.client.options(tus.base + "files/")
    assert response.status_code == 204
    assert response["Tus-Version"] == "1.0.0" and "creation" in response["Tus-Extension"]


def test_create_patch_resume_and_ingest(tus, tenant):
    data = to_bytes(make_ct_series(1, 64, 64)[0])
    created = tus.create(len(data), filename="slice1.dcm")
    assert created.status_code == 201 and created["Tus-Resumable"] == "1.0.0"
    url = created["Location"]
    assert "slice1" not in url
    assert tus.head(url)["Upload-Offset"] == "0"
    assert tus.patch(url, 0, data[:3000]).status_code == 204
    head = tus.head(url)
    assert (head.status_code, head["Upload-Offset"], head["Upload-Length"]) == (200, "3000", str(len(data)))
    assert head["Cache-Control"] == "no-store"
    # Resuming from a stale offset is refused with the real one.
    stale = tus.patch(url, 0, data[:100])
    assert stale.status_code == 409 and stale["Upload-Offset"] == "3000"
    assert tus.ingest(url).status_code == 409  # not complete yet
    done = tus.patch(url, 3000, data[3000:])
    assert done.status_code == 204 and done["Upload-Offset"] == str(len(data))
    result = tus.ingest(url).json()["files"]
    assert result == [{"name": "slice1.dcm", "status": "stored", "reason": "",
                       "study_uid": Instance.objects.for_tenant(tenant).get().study.study_instance_uid}]
    assert tus.head(url).status_code == 404  # cleaned after completion


@pytest.mark.parametrize("headers, status", [
    ({"Upload-Length": "10"}, 412),
    ({**TUS}, 400),
    ({**TUS, "Upload-Length": "-1"}, 400),
    ({**TUS, "Upload-Length": "10", "Upload-Metadata": "filename ***"}, 400),
    ({**TUS, "Upload-Length": str(10**15)}, 413),
])
def test_create_errors(tus, headers, status):
    assert tus.client.post(tus.base + "files/", headers=headers).status_code == status


def test_patch_errors(tus):
    url = tus.create(10, filename="x")["Location"]
    assert tus.client.patch(url, b"abc", content_type="application/offset+octet-stream",
                            headers={"Upload-Offset": "0"}).status_code == 412
    assert tus.client.patch(url, b"abc", content_type="application/octet-stream",
                            headers={**TUS, "Upload-Offset": "0"}).status_code == 415
    assert tus.patch(url, 0, b"x" * 11).status_code == 413
    assert tus.head(url)["Upload-Offset"] == "0"


def test_delete_terminates(tus):
    url = tus.create(10, filename="x")["Location"]
    assert tus.client.delete(url, headers=TUS).status_code == 204
    assert tus.head(url).status_code == 404


def test_other_clinic_and_other_user_get_404(tus, tenant, other_tenant, make_member, login, client):
    from django.test import Client

    url = tus.create(10, filename="x")["Location"]
    path = urlsplit(url).path
    upload_id = path.rsplit("/", 1)[1]
    outsider = Client()
    login(make_member(other_tenant, roles.TECHNOLOGIST), the_client=outsider)
    # Their own clinic's URL with our id, and our clinic's URL: both 404.
    assert outsider.head(f"/t/{other_tenant.slug}/upload/files/{upload_id}", headers=TUS).status_code == 404
    assert outsider.head(path, headers=TUS).status_code == 404
    assert outsider.post(f"/t/{other_tenant.slug}/upload/files/{upload_id}/ingest").status_code == 404
    colleague = Client()
    login(make_member(tenant, roles.TECHNOLOGIST), the_client=colleague)
    assert colleague.head(path, headers=TUS).status_code == 404
    assert tus.head(url).status_code == 200


def test_viewer_cannot_upload(client, tenant, make_member, login):
    login(make_member(tenant, roles.VIEWER))
    assert client.get(f"/t/{tenant.slug}/upload/").status_code == 403
    assert client.post(f"/t/{tenant.slug}/upload/files/", headers={**TUS, "Upload-Length": "1"}).status_code == 403


def test_page_renders_for_uploader(tus, tenant):
    response = tus.client.get(f"/t/{tenant.slug}/upload/")
    assert response.status_code == 200
    assert b"webkitdirectory" in response.content and b"js/upload.js" in response.content


def test_resume_after_dropped_connection(live_server, tenant, make_token):
    """A PATCH whose connection dies mid-body keeps the bytes that arrived; the client asks
    HEAD for the offset and sends the rest."""
    import requests

    token = make_token(tenant, scopes=("upload",))
    auth = {"Authorization": f"Bearer {token}", **TUS}
    data = to_bytes(make_ct_series(1, 128, 128)[0])
    created = requests.post(f"{live_server.url}/t/{tenant.slug}/upload/files/", timeout=10,
                            headers={**auth, "Upload-Length": str(len(data))})
    url = created.headers["Location"]
    half = len(data) // 2
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        head = (f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                f"Authorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
                f"Content-Type: application/offset+octet-stream\r\nContent-Length: {len(data)}\r\n\r\n")
        sock.sendall(head.encode() + data[:half])
    # The server finishes that request on its own thread: wait for it to record the offset.
    deadline = time.monotonic() + 10
    while True:
        offset = int(requests.head(url, headers=auth, timeout=10).headers["Upload-Offset"])
        if offset == half or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert offset == half
    rest = requests.patch(url, data=data[half:], timeout=10, headers={
        **auth, "Upload-Offset": str(half), "Content-Type": "application/offset+octet-stream"})
    assert rest.status_code == 204 and rest.headers["Upload-Offset"] == str(len(data))
    result = requests.post(url + "/ingest", headers=auth, timeout=30).json()
    assert [f["status"] for f in result["files"]] == ["stored"]


def test_cleanup_removes_old_uploads(tus, settings, tmp_path):
    from django.core.management import call_command

    tus.create(10, filename="x")
    assert any((tmp_path / "uploads").rglob("*.bin"))
    call_command("upload_cleanup", hours=1)
    assert any((tmp_path / "uploads").rglob("*.bin"))  # young: kept
    call_command("upload_cleanup", hours=0)
    assert not any(p.is_file() for p in (tmp_path / "uploads").rglob("*"))


def test_batch_summary_links_each_study_for_who_may_view_it(tus, tenant, client, make_token):
    first, second = (to_bytes(make_ct_series(1, 16, 16, patient_name=name, patient_id=pid)[0])
                     for name, pid in (("Zed^Zoe", "Z1"), ("Abel^Ann", "A1")))
    batch = tus.batch()
    tus.send(first, "a.dcm", batch=batch)
    tus.send(second, "b.dcm", batch=batch)
    closed = client.post(f"{tus.base}batches/{batch}/close").json()
    assert closed["studies"] == 2
    assert [link["name"] for link in closed["study_links"]] == ["Abel, Ann", "Zed, Zoe"]
    pks = set(Instance.objects.for_tenant(tenant).values_list("series__study__pk", flat=True))
    assert {link["url"] for link in closed["study_links"]} == {f"/t/{tenant.slug}/studies/{pk}/" for pk in pks}

    # An upload-only token (a script) learns counts, not patients' names.
    token = TusClient(client, tenant.slug, headers={"Authorization": f"Bearer {make_token(tenant, scopes=('upload',))}"})
    client.logout()
    batch = token.batch()
    token.send(first, "a.dcm", batch=batch)
    closed = client.post(f"{token.base}batches/{batch}/close", headers=token.headers).json()
    assert closed["studies"] == 1 and closed["already_present"] == 1 and closed["study_links"] == []
