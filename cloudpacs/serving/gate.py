"""The ASGI layer in front of Django: what must be decided before a body is received.

- One client (its credential, and separately its address) holds at most
  STOW_MAX_CONCURRENT uploads open at once; the next one is answered 429 with
  Retry-After before a byte of its body is read.
- Access log lines name the path, never the query string: QIDO-RS searches carry patient
  names and IDs there.
- The lifespan protocol is answered here, since Django's handler speaks only HTTP.
"""

import hashlib
import logging
import re
import time
from pathlib import Path

from django.conf import settings

from cloudpacs.serving.upload_slots import UploadSlots
from tenants.principal import forwarded_client

access_log = logging.getLogger("cloudpacs.access")

# Requests that carry an upload: STOW-RS bodies and tus upload chunks.
UPLOAD_ROUTES = [
    ("POST", re.compile(r"^/t/[^/]+/dicomweb/studies(/[^/]+)?/?$")),
    ("PATCH", re.compile(r"^/t/[^/]+/upload/files/[^/]+$")),
    ("POST", re.compile(r"^/t/[^/]+/upload/files/$")),
]
RETRY_AFTER_SECONDS = 10
SESSION_COOKIE = re.compile(r"(?:^|;\s*)sessionid=([^;]+)")


def is_upload(scope) -> bool:
    return any(scope["method"] == method and pattern.match(scope["path"])
               for method, pattern in UPLOAD_ROUTES)


def _header(scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin1")
    return ""


def client_keys(scope) -> list[str]:
    """The keys an upload is counted under: the client's address, and its credential (a
    bearer token or a session) when it sends one. Credentials are hashed: the key is used
    as a lock position, never stored."""
    remote = (scope.get("client") or ("", 0))[0]
    keys = ["ip:" + (forwarded_client(remote, _header(scope, b"x-forwarded-for"),
                                      settings.TRUSTED_PROXY_COUNT) or "")]
    credential = _header(scope, b"authorization")
    if not credential and (session := SESSION_COOKIE.search(_header(scope, b"cookie"))):
        credential = "session " + session.group(1)
    if credential:
        keys.append("credential:" + hashlib.sha256(credential.encode()).hexdigest())
    return keys


class Gate:
    def __init__(self, app) -> None:
        self.app = app
        self.slots = UploadSlots(Path(settings.UPLOAD_SLOTS_FILE), settings.STOW_MAX_CONCURRENT)
        Path(settings.INGEST_TMP_DIR).mkdir(parents=True, exist_ok=True)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        if scope["type"] != "http":
            return None
        started = time.monotonic()
        status = {"code": 0, "bytes": 0}

        async def logged_send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            elif message["type"] == "http.response.body":
                status["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            if is_upload(scope):
                await self._upload(scope, receive, logged_send)
            else:
                await self.app(scope, receive, logged_send)
        finally:
            _log(scope, status, time.monotonic() - started)

    async def _upload(self, scope, receive, send):
        held = self.slots.acquire(client_keys(scope))
        if held is None:
            body = (b'{"error": "too many uploads open at once from this client (at most %d); '
                    b'retry when one has finished"}' % settings.STOW_MAX_CONCURRENT)
            await send({"type": "http.response.start", "status": 429,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
                                    (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": body})
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.slots.release(held)


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _log(scope, status: dict, seconds: float) -> None:
    client = (scope.get("client") or ("-", 0))[0]
    access_log.info('%s "%s %s HTTP/%s" %s %s %.3fs', client, scope["method"], scope["path"],
                    scope.get("http_version", "1.1"), status["code"] or "-", status["bytes"], seconds)
