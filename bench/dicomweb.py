"""A minimal, identical DICOMweb client for both servers: STOW bodies streamed over a
kept-alive connection (chunked, as dicomweb-client sends them) or sent by curl with a
Content-Length on a new connection each, streamed WADO reads, timed QIDO queries."""

import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import requests


def multipart_body(parts: Iterable[bytes], boundary: str) -> Iterator[bytes]:
    for part in parts:
        yield (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").encode()
        yield part
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def stow(session: requests.Session, base_url: str, parts: Iterable[bytes], headers: dict) -> requests.Response:
    boundary = uuid.uuid4().hex
    response = session.post(
        f"{base_url}/studies", data=multipart_body(parts, boundary),
        headers={**headers, "Accept": "application/dicom+json",
                 "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'},
        timeout=3600)
    if response.status_code != 200:
        raise RuntimeError(f"STOW failed: {response.status_code} {response.text[:500]}")
    return response


def stow_curl(base_url: str, body: Path, boundary: str, headers: dict, expect_100: bool = False) -> None:
    """POST one STOW-RS body from a file as curl sends it: a new connection and a
    Content-Length. Left to itself curl first sends `Expect: 100-continue` for a body over
    1 MB and waits up to a second for the interim answer, which Orthanc 1.10 never gives:
    unless `expect_100`, the header is left out so both servers get the body at once."""
    args = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--data-binary", f"@{body}",
            "-H", f'Content-Type: multipart/related; type="application/dicom"; boundary={boundary}',
            "-H", "Accept: application/dicom+json", *([] if expect_100 else ["-H", "Expect:"])]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    done = subprocess.run([*args, f"{base_url}/studies"], capture_output=True, text=True, timeout=3600)
    if done.returncode != 0 or done.stdout != "200":
        raise RuntimeError(f"STOW by curl failed: HTTP {done.stdout} {done.stderr[:300]}")


def wado_series_bytes(session: requests.Session, base_url: str, study: str, series: str, headers: dict) -> int:
    """Retrieve a whole series as stored; returns the number of body bytes read."""
    total = 0
    with session.get(f"{base_url}/studies/{study}/series/{series}",
                     headers={**headers, "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
                     stream=True, timeout=3600) as response:
        if response.status_code != 200:
            raise RuntimeError(f"WADO failed: {response.status_code} {response.text[:300]}")
        for chunk in response.iter_content(1 << 20):
            total += len(chunk)
    return total


def wado_series_curl(base_url: str, study: str, series: str, headers: dict) -> tuple[int, float]:
    """The same retrieve by curl (a C client, body to /dev/null): (bytes, seconds). A Python
    client reads about as fast as either server sends, so this one shows the servers."""
    args = ["curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{size_download} %{time_total}",
            "-H", 'Accept: multipart/related; type="application/dicom"; transfer-syntax=*']
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    done = subprocess.run([*args, f"{base_url}/studies/{study}/series/{series}"], capture_output=True,
                          text=True, timeout=3600, check=True)
    size, seconds = done.stdout.split()
    return int(size), float(seconds)


def qido_ms(session: requests.Session, base_url: str, params: dict, headers: dict) -> tuple[float, int]:
    started = time.perf_counter()
    response = session.get(f"{base_url}/studies", params=params,
                           headers={**headers, "Accept": "application/dicom+json"}, timeout=60)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code not in (200, 204):
        raise RuntimeError(f"QIDO failed: {response.status_code} {response.text[:300]}")
    return elapsed, len(response.json()) if response.status_code == 200 and response.content else 0
