"""WADO-RS through the web server as `make run` starts it: a series larger than one send
buffer (the body fills each buffer itself, decrypting tier-1 segments into it) arrives
whole and exact, with its announced length; a client that goes away mid-series leaves no
tier-1 file open in the worker."""

import hashlib
import os
import socket
from pathlib import Path

import pytest
import requests

from archive.models import Instance
from cloudpacs.serving.handler import BATCH_BYTES
from tests.archive.stow_helpers import multipart
from tests.dicom_factory import make_ct_series, to_bytes
from tests.servers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def _store_series(web, tenant, token, count: int) -> str:
    datasets = make_ct_series(count, 512, 512)
    body, content_type = multipart([to_bytes(ds) for ds in datasets])
    response = requests.post(f"{web.url}/t/{tenant.slug}/dicomweb/studies", data=body, timeout=120,
                             headers={"Authorization": f"Bearer {token}", "Content-Type": content_type})
    assert response.status_code == 200, response.text
    return f"{web.url}/t/{tenant.slug}/dicomweb/studies/{datasets[0].StudyInstanceUID}/series/{datasets[0].SeriesInstanceUID}"


def _parts(body: bytes, content_type: str) -> list[bytes]:
    boundary = content_type.split("boundary=")[1].split(";")[0].strip('"').encode()
    pieces = body.split(b"--" + boundary)
    assert pieces[0] == b"" and pieces[-1] == b"--\r\n"
    return [piece.split(b"\r\n\r\n", 1)[1][:-2] for piece in pieces[1:-1]]


def _tier1_files_open(pid: int, tier1: str) -> list[str]:
    names = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(tier1):
            names.append(target)
    return names


def test_a_series_larger_than_a_send_buffer_arrives_exact(web, tenant, make_token):
    token = make_token(tenant, scopes=("upload", "read"))
    series_url = _store_series(web, tenant, token, 24)  # ~12 MB: three send buffers
    response = requests.get(series_url, headers={"Authorization": f"Bearer {token}", "Accept": ACCEPT},
                            timeout=120)
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == len(response.content) > 2 * BATCH_BYTES
    got = sorted(hashlib.sha256(part).hexdigest() for part in _parts(response.content,
                                                                      response.headers["Content-Type"]))
    assert got == sorted(Instance.objects.for_tenant(tenant).values_list("sha256", flat=True))


def test_a_client_gone_mid_series_leaves_no_file_open(web, tenant, make_token, settings):
    token = make_token(tenant, scopes=("upload", "read"))
    series_url = _store_series(web, tenant, token, 24)
    [worker] = web.worker_pids()
    path = series_url.split(web.url, 1)[1]
    with socket.create_connection(("127.0.0.1", web.port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                      f"Accept: {ACCEPT}\r\n\r\n").encode())
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        # The worker is mid-series, blocked on this socket, with an instance open.
        wait_for(lambda: _tier1_files_open(worker, settings.TIER1_PATH), timeout=30,
                 what="the worker to hold an instance open while sending")
    wait_for(lambda: not _tier1_files_open(worker, settings.TIER1_PATH), timeout=30,
             what="the worker to close the instance once the client is gone")
