"""Streaming multipart/related bodies (RFC 2387) for WADO-RS: one part at a time, files
read in 1 MiB chunks, so a series is never held in memory."""

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


def multipart_body(parts: Iterable[tuple[str, Iterable[bytes]]], boundary: str) -> Iterator[bytes]:
    """`parts` yields (part content type, chunks of the part's body)."""
    marker = f"--{boundary}\r\n".encode()
    for content_type, chunks in parts:
        yield marker + f"Content-Type: {content_type}\r\n\r\n".encode()
        yield from chunks
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def multipart_response(parts: Iterable[tuple[str, Iterable[bytes]]], part_type: str,
                       transfer_syntax: str | None = None) -> StreamingHttpResponse:
    boundary = new_boundary()
    content_type = f'multipart/related; type="{part_type}"; boundary={boundary}'
    if transfer_syntax:
        content_type += f"; transfer-syntax={transfer_syntax}"
    response = StreamingHttpResponse(multipart_body(parts, boundary), content_type=content_type)
    response["Cache-Control"] = "private, no-store"
    return response
