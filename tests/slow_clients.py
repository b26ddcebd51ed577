"""Slow uploads and the latency of everyone else's requests while they are held.

A slow client here is what the outside audit used: a STOW-RS request with a valid token
and an honest Content-Length whose body arrives one byte every `interval` seconds. Used by
tests/test_serving_slow_clients.py and by `python -m bench.slow_clients` against a
running server."""

import socket
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

BODY_LENGTH = 1_000_000  # never reached: the clients stop long before


def stow_request_head(host: str, port: int, path: str, token: str, length: int = BODY_LENGTH) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: multipart/related; type=\"application/dicom\"; boundary=slow\r\n"
            f"Content-Length: {length}\r\nAccept: application/dicom+json\r\n\r\n").encode()


def open_upload(host: str, port: int, path: str, token: str, source_ip: str = "127.0.0.1",
                timeout: float = 10) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout, source_address=(source_ip, 0))
    sock.sendall(stow_request_head(host, port, path, token) + b"--slow\r\n")
    return sock


def read_status(sock: socket.socket) -> tuple[int, dict[str, str]]:
    """The status and headers of the response on `sock` (blocking until they come)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin1").split("\r\n")
    if not head or not head[0].startswith("HTTP/"):
        return 0, {}
    headers = dict(line.split(":", 1) for line in head[1:] if ":" in line)
    return int(head[0].split()[1]), {k.strip().lower(): v.strip() for k, v in headers.items()}


@dataclass
class SlowUploads:
    """`count` slow uploads, spread over `clients` (source address, token) pairs, each
    sending one more byte every `interval` seconds from a background thread."""

    host: str
    port: int
    path: str
    clients: list[tuple[str, str]]
    count: int
    interval: float = 2.0
    sockets: list[socket.socket] = field(default_factory=list)
    refused: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> "SlowUploads":
        for i in range(self.count):
            source_ip, token = self.clients[i % len(self.clients)]
            self.sockets.append(open_upload(self.host, self.port, self.path, token, source_ip))
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()
        return self

    def _trickle(self) -> None:
        while not self._stop.wait(self.interval):
            for sock in list(self.sockets):
                try:
                    sock.send(b"x")
                except OSError:  # answered (e.g. 429) and closed by the server
                    self.sockets.remove(sock)
                    self.refused += 1

    def still_open(self) -> int:
        return len(self.sockets)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        for sock in self.sockets:
            sock.close()


def latencies(probes: dict[str, Callable[[], requests.Response]], rounds: int) -> dict[str, list[float]]:
    """Seconds each probe took, `rounds` times, probes interleaved. A probe that does not
    answer 2xx/3xx counts as failed (infinite latency)."""
    out: dict[str, list[float]] = {name: [] for name in probes}
    for _ in range(rounds):
        for name, probe in probes.items():
            started = time.monotonic()
            try:
                ok = probe().status_code < 400
            except requests.RequestException:
                ok = False
            out[name].append(time.monotonic() - started if ok else float("inf"))
    return out


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def summary(values: list[float]) -> str:
    finite = [v for v in values if v != float("inf")]
    failed = len(values) - len(finite)
    if not finite:
        return f"all {failed} failed"
    return (f"p50 {statistics.median(finite) * 1000:.0f} ms, p95 {p95(values) * 1000:.0f} ms, "
            f"max {max(values) * 1000:.0f} ms" + (f", {failed} failed" if failed else ""))
