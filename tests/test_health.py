"""/healthz (the process answers) and /readyz (database, broker and storage answer too)."""

import socket
import threading
import time
from contextlib import closing

import pytest
from django.db import connection
from django.test import Client

from cloudpacs.celery import app as celery_app
from cloudpacs.health import BROKER_TIMEOUT


def point_broker_at(monkeypatch, url: str) -> None:
    # Celery reads CELERY_BROKER_URL from the environment before its own config.
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    monkeypatch.setattr(celery_app.conf, "broker_url", url)


def closed_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_healthz_needs_nothing_but_the_process(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert client.post("/healthz").status_code == 405


def test_readyz_when_everything_answers(db, client):
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "broker", "storage"}
    assert all(check["ok"] for check in body["checks"].values())


def test_readyz_says_the_broker_is_down(db, client, monkeypatch):
    point_broker_at(monkeypatch, f"redis://127.0.0.1:{closed_port()}/0")
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["broker"]["ok"] is False and body["checks"]["broker"]["error"]
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["storage"]["ok"] is True


def test_readyz_does_not_hang_on_a_broker_that_never_answers(db, monkeypatch):
    # A socket that completes the TCP handshake (kernel backlog) but is never read from:
    # without socket timeouts the Redis PING would wait forever.
    with closing(socket.socket()) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        point_broker_at(monkeypatch, f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        result = {}

        def probe():
            try:
                result["response"] = Client().get("/readyz")
            finally:
                connection.close()  # this thread's own database connection

        started = time.monotonic()
        worker = threading.Thread(target=probe, daemon=True)
        worker.start()
        # Generous bound (a few times the probe's own timeout): we only prove it returns.
        worker.join(timeout=BROKER_TIMEOUT * 10)
        assert not worker.is_alive(), "/readyz hung on a silent broker"
    response = result["response"]
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False
    assert time.monotonic() - started < BROKER_TIMEOUT * 10


@pytest.mark.django_db
def test_readyz_says_the_storage_is_down(client, settings):
    settings.STORAGES = {**settings.STORAGES, "secondary": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": "cloudpacs-secondary", "endpoint_url": f"http://127.0.0.1:{closed_port()}",
                    "access_key": "x", "secret_key": "y", "region_name": "us-east-1"},
    }}
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["storage"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True
