"""Every middleware and view here is synchronous, so a request crosses from the event loop
to a thread once (cloudpacs.serving.handler). Django's ASGI handler in async mode crossed
four or five times per request, about a millisecond of a small request's time."""

import asyncio
import threading

import pytest
from asgiref import sync

from cloudpacs.serving.handler import CloudPacsASGIHandler


@pytest.fixture
def trips(monkeypatch):
    """Count the request's trips from the event loop to a thread."""
    made = []
    call = sync.SyncToAsync.__call__

    async def counted(self, *args, **kwargs):
        made.append(getattr(self.func, "__name__", repr(self.func)))
        return await call(self, *args, **kwargs)

    monkeypatch.setattr(sync.SyncToAsync, "__call__", counted)
    return made


def _get(path: str, handler=None) -> tuple[int, bytes]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 5000),
             "server": ("127.0.0.1", 80)}
    messages = [{"type": "http.request", "body": b"", "more_body": False}]
    sent = []

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # the client stays connected

    async def send(message):
        sent.append(message)

    asyncio.run((handler or CloudPacsASGIHandler())(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body


def test_a_request_crosses_to_a_thread_once(trips):
    status, body = _get("/healthz")
    assert status == 200 and b"ok" in body
    assert trips == ["_respond"]


def test_an_error_answered_by_django_still_crosses_once(trips):
    status, _ = _get("/no-such-page/")
    assert status == 404
    assert trips == ["_respond"]


def test_the_next_request_reuses_the_thread(monkeypatch):
    """Django starts a thread per request, and the event loop waits for it to end."""
    from django.core.handlers import base

    threads = []
    chain = base.BaseHandler.get_response

    def noted(self, request):
        threads.append(threading.get_ident())
        return chain(self, request)

    monkeypatch.setattr(base.BaseHandler, "get_response", noted)
    handler = CloudPacsASGIHandler()
    for _ in range(3):
        assert _get("/healthz", handler)[0] == 200
    assert len(threads) == 3 and len(set(threads)) == 1 and threads[0] != threading.get_ident()
