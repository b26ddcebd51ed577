"""Django's ASGI handler, with the four things a PACS needs from it.

- A request crosses from the event loop to a thread once: every middleware and view here
  is synchronous, so the whole of Django's work (request_started, the middleware chain and
  view, and for a response already in memory its closing) runs in one trip. Django's own
  handler, in async mode, crosses four or five times per request (its signals, the top of
  the chain, back to the loop below the first synchronous middleware, the view, and the
  closing), about a millisecond of a small request's time here. The request's thread is
  taken from a pool of kept threads, where Django starts one per request and then waits
  on the event loop for it to end.

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
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse
from django.urls import set_script_prefix

# How much of a synchronous iterator one trip to its thread collects: enough to make the
# trips cheap next to the bytes (4 MiB: 1 MiB was measured ~40% slower for a series), little
# enough to keep memory flat.
BATCH_BYTES = 4 << 20


# Idle request threads kept for the next requests; more are made when more requests run at
# once (as Django would), and those beyond this are let go when their request ends.
KEPT_THREADS = 16


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
    def __init__(self):
        super().__init__()
        self._idle_threads: list[ThreadPoolExecutor] = []

    def load_middleware(self, is_async=False):
        # The synchronous chain, whatever Django's ASGIHandler asks for (see the module's doc).
        super().load_middleware(is_async=False)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        # One thread for the whole request (its database connection lives there), one call
        # at a time, as ThreadSensitiveContext() gives, but kept for the next request.
        thread = (self._idle_threads.pop() if self._idle_threads
                  else ThreadPoolExecutor(max_workers=1, thread_name_prefix="request"))
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self.handle(scope, receive, send)
        finally:
            if len(self._idle_threads) < KEPT_THREADS:
                self._idle_threads.append(thread)
            else:
                thread.shutdown(wait=False)

    async def handle(self, scope, receive, send):
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        except BodyIdle:
            await _send_simple(send, 408, b'{"error": "no part of the request body arrived for '
                               + str(settings.UPLOAD_IDLE_TIMEOUT).encode() + b' s"}')
            return
        try:
            # thread_sensitive: every trip of this request goes to one thread, which owns
            # its database connection (__call__ gives each request one).
            response = await sync_to_async(self._respond, thread_sensitive=True)(scope, body_file)
            if not response.streaming:
                await self.send_response(response, send)
                return
            await self._stream(response, receive, send)
        finally:
            body_file.close()

    def _respond(self, scope, body_file):
        """Django's part of the request, in the request's thread. A response already in
        memory is closed here (request_finished: its database connection goes back to the
        pool) before a byte is sent; a streaming one is closed once sent."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
            response._handler_class = self.__class__
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
        if not response.streaming:
            response.close()
        return response

    async def _stream(self, response, receive, send):
        """Send a streaming response, and stop reading it when the client goes away."""
        sending = asyncio.create_task(self.send_response(response, send))
        gone = asyncio.create_task(self.listen_for_disconnect(receive))
        try:
            await asyncio.wait([sending, gone], return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            sending.cancel()  # nothing, if it has finished
            # A batch the sender had asked for may still be running in the request's thread;
            # the closing below goes to that thread too, so it runs once the batch is done.
            results = await asyncio.gather(sending, gone, return_exceptions=True)
            await sync_to_async(response.close, thread_sensitive=True)()
        failure = results[0]
        if isinstance(failure, BaseException) and not isinstance(failure, asyncio.CancelledError):
            raise failure

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
