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


def multipart_body(parts: Iterable[tuple[str, Iterable[bytes]]], boundary: str) -> Iterator[bytes]:
    """`parts` yields (part content type, chunks of the part's body)."""
    for content_type, chunks in parts:
        yield _part_header(boundary, content_type)
        yield from chunks
        yield b"\r\n"
    yield _closing(boundary)


def multipart_length(part_sizes: Iterable[tuple[str, int]], boundary: str) -> int:
    """The body's length in bytes for parts of (content type, body size)."""
    return sum(len(_part_header(boundary, content_type)) + size + 2
               for content_type, size in part_sizes) + len(_closing(boundary))


def multipart_response(parts: Iterable[tuple[str, Iterable[bytes]]], part_type: str,
                       transfer_syntax: str | None = None, *, boundary: str | None = None,
                       length: int | None = None) -> StreamingHttpResponse:
    """`length`: the body's exact size (multipart_length with the same `boundary`), when
    known; the parts must then yield exactly those bytes."""
    boundary = boundary or new_boundary()
    content_type = f'multipart/related; type="{part_type}"; boundary={boundary}'
    if transfer_syntax:
        content_type += f"; transfer-syntax={transfer_syntax}"
    response = StreamingHttpResponse(multipart_body(parts, boundary), content_type=content_type)
    if length is not None:
        response["Content-Length"] = str(length)
    response["Cache-Control"] = "private, no-store"
    return response
