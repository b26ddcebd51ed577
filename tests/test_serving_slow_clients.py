"""Slow clients cannot take the service down (issue 8, item 1).

The web server runs exactly as `make run` starts it (gunicorn.conf.py: uvicorn workers
under gunicorn), against this test's database. The slow uploads are real sockets that
send a STOW-RS body one byte every 2 s with a valid token and an honest Content-Length,
from several loopback addresses (127.0.0.2-5) so that 32 of them fit under the per-client
limit of 8."""

import select
import socket

import pytest
import requests
from django.conf import settings

from tests.archive.stow_helpers import files_under, multipart
from tests.dicom_factory import make_ct_series, to_bytes
from tests.servers import WebServer, database_url, wait_for
from tests.slow_clients import SlowUploads, latencies, open_upload, p95, read_status, summary

pytestmark = pytest.mark.django_db(transaction=True)


def _token(tenant, name):
    from tenants.audit import Actor
    from tenants.services import api_token_create

    return api_token_create(tenant=tenant, name=name, scopes=["upload", "read"], actor=Actor.system())[1]


@pytest.fixture
def server_env(tmp_path):
    from django.db import connection

    return {"DATABASE_URL": database_url(connection.settings_dict),
            "CLOUDPACS_VAR_DIR": str(settings.VAR_DIR),
            "TIER1_PATH": str(tmp_path / "tier1"), "INGEST_TMP_DIR": str(tmp_path / "spool"),
            "UPLOAD_SLOTS_FILE": str(tmp_path / "slots"), "LOG_LEVEL": "WARNING"}


def _start(env, tmp_path, **extra):
    server = WebServer({**env, **{k: str(v) for k, v in extra.items()}}, tmp_path)
    server.start()
    return server


@pytest.fixture
def web(server_env, tmp_path):
    server = _start(server_env, tmp_path)
    yield server
    server.stop()


def _stow(url, token, datasets):
    body, content_type = multipart([to_bytes(ds) for ds in datasets])
    return requests.post(url, data=body, timeout=30, headers={
        "Authorization": f"Bearer {token}", "Content-Type": content_type,
        "Accept": "application/dicom+json"})


def test_32_slow_uploads_leave_every_other_request_answered_within_a_second(web, make_tenant):
    acme, other = make_tenant("acme"), make_tenant("other")
    slow_tokens = [_token(acme, f"modality {i}") for i in range(4)]
    reader = _token(other, "reader")
    [ds] = make_ct_series(1)
    other_base = f"{web.url}/t/other/dicomweb"
    assert _stow(f"{other_base}/studies", reader, [ds]).status_code == 200
    auth = {"Authorization": f"Bearer {reader}"}
    instance_url = (f"{other_base}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                    f"/instances/{ds.SOPInstanceUID}")
    probes = {
        "/healthz": lambda: requests.get(f"{web.url}/healthz", timeout=5),
        "/readyz": lambda: requests.get(f"{web.url}/readyz", timeout=5),
        "login page": lambda: requests.get(f"{web.url}/login/", timeout=5),
        "other clinic's QIDO": lambda: requests.get(f"{other_base}/studies", headers=auth, timeout=5),
        "other clinic's WADO": lambda: requests.get(instance_url, timeout=5, headers={
            **auth, "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}),
    }
    clients = [(f"127.0.0.{2 + i}", token) for i, token in enumerate(slow_tokens)]
    with SlowUploads("127.0.0.1", web.port, "/t/acme/dicomweb/studies", clients, count=32) as slow:
        measured = latencies(probes, rounds=12)
        assert slow.still_open() == 32, "the server refused or dropped slow uploads under the limit"
    report = {name: summary(values) for name, values in measured.items()}
    assert all(p95(values) < 1.0 for values in measured.values()), report


def test_a_body_that_stops_arriving_is_dropped_and_nothing_is_stored(server_env, tmp_path, make_tenant):
    from archive.models import Instance

    acme = make_tenant("acme")
    token = _token(acme, "modality")
    server = _start(server_env, tmp_path, UPLOAD_IDLE_TIMEOUT=2)
    try:
        [ds] = make_ct_series(1)
        body, content_type = multipart([to_bytes(ds)])
        head = (f"POST /t/acme/dicomweb/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {token}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
            sock.sendall(head + body[:-10])  # a whole instance, but not the closing boundary
            status, _ = read_status(sock)
            assert status == 408
            assert sock.recv(65536) in (b"",) or sock.recv(65536) == b""  # closed by the server
        assert not Instance.objects.for_tenant(acme).exists()
        assert files_under(server_env["INGEST_TMP_DIR"], server_env["TIER1_PATH"]) == []
    finally:
        server.stop()


def _refused(sockets, timeout=5.0):
    """The sockets the server answered (within `timeout`), with their status and headers;
    an upload being received gets no answer."""
    answered = {}
    ready, _, _ = select.select(sockets, [], [], timeout)
    for sock in ready:
        answered[sock] = read_status(sock)
    return answered


def test_one_token_holds_at_most_stow_max_concurrent_uploads(web, make_tenant):
    acme = make_tenant("acme")
    token = _token(acme, "modality")
    path = "/t/acme/dicomweb/studies"
    # Nine uploads with one token from nine addresses: whichever the server takes last
    # is refused.
    held = [open_upload("127.0.0.1", web.port, path, token, f"127.0.0.{2 + i}") for i in range(9)]
    try:
        answered = _refused(held)
        assert [status for status, _ in answered.values()] == [429]
        [(_, headers)] = answered.values()
        assert int(headers["retry-after"]) > 0
        # Once one upload ends, the token may start another.
        for sock in [*answered, held[0] if held[0] not in answered else held[1]]:
            held.remove(sock)
            sock.close()
        [ds] = make_ct_series(1)
        stored = wait_for(lambda: (r := _stow(f"{web.url}{path}", token, [ds])).status_code != 429 and r,
                          timeout=10, what="a slot to come free")
        assert stored.status_code == 200
    finally:
        for sock in held:
            sock.close()


def test_one_client_address_holds_at_most_stow_max_concurrent_uploads(web, make_tenant):
    acme = make_tenant("acme")
    tokens = [_token(acme, f"modality {i}") for i in range(10)]
    path = "/t/acme/dicomweb/studies"
    held = [open_upload("127.0.0.1", web.port, path, tokens[i], "127.0.0.2") for i in range(9)]
    try:
        assert [status for status, _ in _refused(held).values()] == [429]
        # Another address is not limited by the first address's uploads.
        from_elsewhere = open_upload("127.0.0.1", web.port, path, tokens[9], "127.0.0.3")
        held.append(from_elsewhere)
        assert _refused([from_elsewhere], timeout=1.5) == {}
    finally:
        for sock in held:
            sock.close()
