"""Django's ASGI handler, with the three things a PACS needs from it.

- A request body that stops arriving for UPLOAD_IDLE_TIMEOUT seconds is dropped (408):
  uvicorn has no body timeout of its own, and an idle upload would otherwise hold its
  connection and spool file forever.
- The body is spooled in INGEST_TMP_DIR (the disk sized for uploads), in a file that has
  no name (O_TMPFILE), so nothing of it is left behind if the process dies.
- A streaming response whose iterator is synchronous (WADO-RS reads files) is sent as it
  is read. Django would first collect such an iterator into a list: a whole series in
  memory. A response with `batches` (an object whose `next_batch(limit)` returns the next
  bytes-like buffer, or None at the end) fills each send buffer itself.
"""

import asyncio
import tempfile

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler

# How much of a synchronous iterator one trip to its thread collects: enough to make the
# trips cheap next to the bytes (4 MiB: 1 MiB was measured ~40% slower for a series), little
# enough to keep memory flat.
BATCH_BYTES = 4 << 20


class BodyIdle(Exception):
    """The client sent no part of its request body for UPLOAD_IDLE_TIMEOUT seconds."""


def _next_batch(iterator) -> list[bytes]:
    batch, size = [], 0
    for part in iterator:
        batch.append(part)
        size += len(part)
        if size >= BATCH_BYTES:
            break
    return batch


async def _send_simple(send, status: int, body: bytes, extra_headers=()) -> None:
    headers = [(b"content-type", b"application/json"), (b"connection", b"close"), *extra_headers]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class CloudPacsASGIHandler(ASGIHandler):
    async def handle(self, scope, receive, send):
        try:
            await super().handle(scope, receive, send)
        except BodyIdle:
            await _send_simple(send, 408, b'{"error": "no part of the request body arrived for '
                               + str(settings.UPLOAD_IDLE_TIMEOUT).encode() + b' s"}')

    async def read_body(self, receive):
        body_file = tempfile.SpooledTemporaryFile(
            max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b", dir=settings.INGEST_TMP_DIR)
        idle = settings.UPLOAD_IDLE_TIMEOUT
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(idle) as deadline:
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise RequestAborted()
                    if body := message.get("body"):
                        body_file.write(body)
                    if not message.get("more_body", False):
                        break
                    deadline.reschedule(loop.time() + idle)
        except TimeoutError:
            body_file.close()
            raise BodyIdle() from None
        except BaseException:
            body_file.close()
            raise
        body_file.seek(0)
        return body_file

    async def send_response(self, response, send):
        if not response.streaming or response.is_async:
            return await super().send_response(response, send)
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": _headers(response)})
        # thread_sensitive: the same thread as the view, which owns its DB connection.
        # One message per batch: each send is a trip through the event loop. Reading the
        # next batch while this one is sent was measured slower: both threads then fight
        # for the GIL.
        batches = getattr(response, "batches", None)
        if batches is not None:
            # The content fills each send buffer itself (archive.dicomweb.streaming): no join.
            fill = sync_to_async(batches.next_batch, thread_sensitive=True)
            while (body := await fill(BATCH_BYTES)) is not None:
                await send({"type": "http.response.body", "body": body, "more_body": True})
        else:
            iterator = iter(response.streaming_content)
            next_batch = sync_to_async(_next_batch, thread_sensitive=True)
            while batch := await next_batch(iterator):
                await send({"type": "http.response.body", "body": b"".join(batch), "more_body": True})
        await send({"type": "http.response.body"})


def _headers(response) -> list[tuple[bytes, bytes]]:
    headers = [(name.encode("ascii"), value.encode("latin1")) for name, value in response.items()]
    headers += [(b"Set-Cookie", c.output(header="").encode("ascii").strip())
                for c in response.cookies.values()]
    return headers
