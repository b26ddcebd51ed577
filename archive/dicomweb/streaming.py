"""Streaming multipart/related bodies (RFC 2387) for WADO-RS: one part at a time, files
read in 1 MiB chunks, so a series is never held in memory.

When every part's size is known before the first byte (instances sent as stored), the
response carries a Content-Length: a viewer or download can show progress, and neither
side pays for chunked framing."""

import secrets
from collections.abc import Iterable, Iterator

from django.http import StreamingHttpResponse

CHUNK = 1 << 20


def new_boundary() -> str:
    return f"cloudpacs-{secrets.token_hex(16)}"


def file_chunks(fh, chunk_size: int = CHUNK) -> Iterator[bytes]:
    with fh:
        while chunk := fh.read(chunk_size):
            yield chunk


def _part_header(boundary: str, content_type: str) -> bytes:
    return f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode()


def _closing(boundary: str) -> bytes:
    return f"--{boundary}--\r\n".encode()


def multipart_body(parts: Iterable[tuple[str, Iterable[bytes]]], boundary: str) -> "MultipartBody":
    """`parts` yields (part content type, the part's body): chunks of bytes, or a readable
    (`readinto`, such as archive.storage.reader.StoredBytes) that is also iterable."""
    return MultipartBody(parts, boundary)


# Send buffers a body keeps for reuse: the batch being sent and the one being filled.
SEND_BUFFERS_KEPT = 2


def _unviewed(buffer: bytearray) -> bool:
    try:
        buffer.append(0)  # refused while a memoryview of it exists
    except BufferError:
        return False
    del buffer[-1]
    return True


class MultipartBody:
    """A multipart/related body, iterable in chunks like any streaming content, that can
    also fill a server's send buffer itself (`next_batch`): a readable part is read straight
    into the buffer (decrypted into it), instead of its chunks being joined afterwards."""

    def __init__(self, parts: Iterable[tuple[str, Iterable[bytes]]], boundary: str) -> None:
        self._pieces = self._all_pieces(parts, boundary)
        self._current = None  # the piece being sent: bytes, or a readable
        self._offset = 0
        self._buffers: list[bytearray] = []

    @staticmethod
    def _all_pieces(parts, boundary: str):
        for content_type, body in parts:
            yield _part_header(boundary, content_type)
            if hasattr(body, "readinto"):
                yield body
            else:
                yield from body
            yield b"\r\n"
        yield _closing(boundary)

    def __iter__(self) -> Iterator[bytes]:
        for piece in self._pieces:
            if hasattr(piece, "readinto"):
                yield from piece
            else:
                yield piece

    def next_batch(self, limit: int) -> memoryview | None:
        """Up to `limit` next bytes of the body, in one buffer; None at its end. A part that
        fails (a damaged file) closes the body: the response ends there, broken."""
        try:
            return self._fill(limit)
        except BaseException:
            self.close()
            raise

    def _send_buffer(self, limit: int) -> bytearray:
        """A buffer to fill: one of this body's earlier ones that no batch still uses, else
        a new one. A new bytearray is zeroed first, which cost a tenth of a series
        retrieve's CPU; a batch handed out is a view of its buffer, and a buffer with a
        view alive (the server still sending it, or the caller holding it) cannot be
        resized, which is how one still in use is told apart."""
        for buffer in self._buffers:
            if len(buffer) == limit and _unviewed(buffer):
                return buffer
        buffer = bytearray(limit + 1)
        del buffer[-1]  # room for _unviewed's test byte: it never reallocates
        if len(self._buffers) < SEND_BUFFERS_KEPT:
            self._buffers.append(buffer)
        return buffer

    def _fill(self, limit: int) -> memoryview | None:
        buffer = memoryview(self._send_buffer(limit))
        filled = 0
        while filled < limit:
            if self._current is None:
                self._current, self._offset = next(self._pieces, None), 0
                if self._current is None:
                    break
            piece = self._current
            if hasattr(piece, "readinto"):
                n = piece.readinto(buffer[filled:])
                if n == 0:
                    self._current = None
                filled += n
                continue
            take = min(len(piece) - self._offset, limit - filled)
            buffer[filled:filled + take] = memoryview(piece)[self._offset:self._offset + take]
            filled += take
            self._offset += take
            if self._offset == len(piece):
                self._current = None
        return buffer[:filled] if filled else None

    def close(self) -> None:
        """Close the part being read (a file) and the parts' source; Django calls this when
        the response ends, sent whole or not."""
        if hasattr(self._current, "close"):
            self._current.close()
        self._current = None
        self._pieces.close()
        self._buffers.clear()


class MultipartResponse(StreamingHttpResponse):
    """A streaming response whose body can fill the server's send buffers itself
    (`batches`, read by cloudpacs.serving.handler) as long as no middleware has wrapped
    its content (compression, for one): then it streams as chunks like any other."""

    def _set_streaming_content(self, value) -> None:
        super()._set_streaming_content(value)
        self.batches = value if isinstance(value, MultipartBody) else None


def multipart_length(part_sizes: Iterable[tuple[str, int]], boundary: str) -> int:
    """The body's length in bytes for parts of (content type, body size)."""
    return sum(len(_part_header(boundary, content_type)) + size + 2
               for content_type, size in part_sizes) + len(_closing(boundary))


def multipart_response(parts: Iterable[tuple[str, Iterable[bytes]]], part_type: str,
                       transfer_syntax: str | None = None, *, boundary: str | None = None,
                       length: int | None = None) -> MultipartResponse:
    """`length`: the body's exact size (multipart_length with the same `boundary`), when
    known; the parts must then yield exactly those bytes."""
    boundary = boundary or new_boundary()
    content_type = f'multipart/related; type="{part_type}"; boundary={boundary}'
    if transfer_syntax:
        content_type += f"; transfer-syntax={transfer_syntax}"
    response = MultipartResponse(multipart_body(parts, boundary), content_type=content_type)
    if length is not None:
        response["Content-Length"] = str(length)
    response["Cache-Control"] = "private, no-store"
    return response
