"""Under ASGI a streaming response with a synchronous iterator (every WADO-RS retrieve) is
sent while it is read, not collected into memory first, as Django's own handler does."""

import asyncio

from django.http import StreamingHttpResponse

from cloudpacs.serving.handler import BATCH_BYTES, CloudPacsASGIHandler

CHUNK = 256 * 1024


def test_a_synchronous_stream_is_sent_as_it_is_read():
    produced = []

    def chunks():
        for i in range(64):  # 16 MiB in all
            produced.append(i)
            yield bytes(CHUNK)

    sent_when = []  # how many chunks the iterator had produced when each body message went

    async def send(message):
        if message["type"] == "http.response.body" and message.get("body"):
            sent_when.append(len(produced))

    response = StreamingHttpResponse(chunks(), content_type="application/octet-stream")
    asyncio.run(CloudPacsASGIHandler.send_response(object.__new__(CloudPacsASGIHandler), response, send))
    assert len(sent_when) == 64
    # The first chunk left before the iterator had read much more than one batch.
    assert sent_when[0] <= BATCH_BYTES // CHUNK + 1
    assert sent_when[-1] == 64
