"""Under ASGI a streaming response with a synchronous iterator (every WADO-RS retrieve) is
sent while it is read, not collected into memory first, as Django's own handler does."""

import asyncio

from django.http import StreamingHttpResponse

from cloudpacs.serving.handler import BATCH_BYTES, CloudPacsASGIHandler

CHUNK = 256 * 1024


def test_a_synchronous_stream_is_sent_as_it_is_read():
    produced = []

    def chunks():
        for i in range(64):  # 16 MiB in all, four batches
            produced.append(i)
            yield bytes(CHUNK)

    sent_when = []  # how many chunks the iterator had produced when each body message went
    sent_bytes = []

    async def send(message):
        if message["type"] == "http.response.body" and message.get("body"):
            sent_when.append(len(produced))
            sent_bytes.append(len(message["body"]))

    response = StreamingHttpResponse(chunks(), content_type="application/octet-stream")
    asyncio.run(CloudPacsASGIHandler.send_response(object.__new__(CloudPacsASGIHandler), response, send))
    # Every byte went out, batch by batch: the first before the iterator had read more
    # than one batch, not after it had been read to its end.
    assert sent_bytes[0] == BATCH_BYTES
    assert sent_when[0] <= BATCH_BYTES // CHUNK + 1 < 64
    assert sum(sent_bytes) == 64 * CHUNK and sent_when[-1] == 64


def test_a_response_that_fills_its_own_buffers_is_sent_buffer_by_buffer():
    """WADO-RS's multipart body fills each send buffer itself (archive.dicomweb.streaming):
    the handler asks it for BATCH_BYTES at a time and sends what it gives, unjoined."""
    asked = []

    class Body:
        def __init__(self):
            self.left = 2 * BATCH_BYTES + 5

        def next_batch(self, limit):
            asked.append(limit)
            if not self.left:
                return None
            n = min(limit, self.left)
            self.left -= n
            return memoryview(bytearray(n))

    sent = []

    async def send(message):
        if message["type"] == "http.response.body":
            sent.append(message.get("body", b""))

    response = StreamingHttpResponse(iter([b"never read"]), content_type="application/octet-stream")
    response.batches = Body()
    asyncio.run(CloudPacsASGIHandler.send_response(object.__new__(CloudPacsASGIHandler), response, send))
    assert asked == [BATCH_BYTES] * 4
    assert [len(body) for body in sent] == [BATCH_BYTES, BATCH_BYTES, 5, 0]
    assert isinstance(sent[0], memoryview)
