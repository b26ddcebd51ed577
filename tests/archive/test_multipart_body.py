"""The WADO-RS multipart body fills a server's send buffers itself (no join of chunks),
and gives the same bytes as when iterated; wrapped by a middleware, it is plain streaming
content again."""

import io

import pytest

from archive.dicomweb.streaming import multipart_body, multipart_length, multipart_response


class Readable:
    """Stands in for StoredBytes: readinto until 0, then closed; iterable too."""

    def __init__(self, data: bytes) -> None:
        self._fh, self.closed = io.BytesIO(data), False

    def readinto(self, buffer) -> int:
        n = self._fh.readinto(buffer)
        if n == 0:
            self.close()
        return n

    def __iter__(self):
        while chunk := self._fh.read(7):
            yield chunk
        self.close()

    def close(self) -> None:
        self.closed = True


def _parts(payloads):
    for i, data in enumerate(payloads):
        body = Readable(data) if i % 2 == 0 else iter([data[:3], data[3:]])
        yield f"application/dicom; n={i}", body


PAYLOADS = [bytes([i]) * (i * 37 + 1) for i in range(9)]


def _batched(body, limit):
    out = []
    while (batch := body.next_batch(limit)) is not None:
        assert 0 < len(batch) <= limit
        out.append(bytes(batch))
    return b"".join(out)


@pytest.mark.parametrize("limit", [1, 2, 5, 64, 333, 1 << 20])
def test_batches_are_the_iterated_bytes(limit):
    iterated = b"".join(multipart_body(_parts(PAYLOADS), "b0"))
    assert _batched(multipart_body(_parts(PAYLOADS), "b0"), limit) == iterated
    assert len(iterated) == multipart_length(((f"application/dicom; n={i}", len(d))
                                              for i, d in enumerate(PAYLOADS)), "b0")


def test_closing_the_body_closes_the_part_being_read():
    readables = [Readable(b"x" * 100), Readable(b"y" * 100)]
    body = multipart_body([("a", readables[0]), ("b", readables[1])], "b0")
    assert body.next_batch(60) is not None  # inside the first part
    body.close()
    assert readables[0].closed


def test_a_response_whose_content_is_wrapped_streams_as_chunks():
    response = multipart_response(_parts(PAYLOADS), "application/dicom", boundary="b0")
    assert response.batches is not None
    response.streaming_content = (chunk.upper() for chunk in response.streaming_content)
    assert response.batches is None


def test_a_part_that_fails_closes_the_body_and_its_file():
    class Failing(Readable):
        def readinto(self, buffer):
            if self._fh.tell() >= 50:
                raise OSError("the disk said no")
            return super().readinto(memoryview(buffer)[:50])

    failing = Failing(b"x" * 100)
    body = multipart_body([("a", failing), ("b", Readable(b"y"))], "b0")
    with pytest.raises(OSError):
        body.next_batch(1 << 20)
    assert failing.closed


def test_send_buffers_are_reused_only_once_no_batch_views_them():
    """Each batch is a view of a send buffer the body keeps: filled again only when no view
    of it is alive (the server sent it and let go), never under a batch still being sent."""
    payloads = [bytes([i]) * 1000 for i in range(1, 30)]
    iterated = b"".join(multipart_body(_parts(payloads), "b0"))

    held = []  # a server that has sent nothing yet: every batch still viewed
    body = multipart_body(_parts(payloads), "b0")
    while (batch := body.next_batch(256)) is not None:
        held.append(batch)
    assert b"".join(bytes(b) for b in held) == iterated
    assert len({id(b.obj) for b in held}) == len(held)  # a buffer of its own each

    buffers = []  # a server that lets go of each batch once it is sent
    body = multipart_body(_parts(payloads), "b0")
    sent = []
    while (batch := body.next_batch(256)) is not None:
        buffers.append(batch.obj)  # the buffer itself, not a view: it does not hold it
        sent.append(bytes(batch))
    assert b"".join(sent) == iterated
    assert len({id(b) for b in buffers}) == 2  # the batch being sent and the one being filled
