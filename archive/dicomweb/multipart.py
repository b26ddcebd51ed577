"""A streaming multipart/related reader (RFC 2046, RFC 2387) for STOW-RS request bodies.

The body is read in large chunks from a file-like stream and each part's content is handed
out chunk by chunk, so neither the whole body nor a whole part is ever held in memory. The
boundary is searched with `bytearray.find`, keeping the last `len(delimiter) - 1` bytes of
a chunk back so a delimiter that straddles two reads is still found.
"""

import re
from collections.abc import Iterator
from typing import Protocol

READ_SIZE = 1 << 20
MAX_HEADER_BYTES = 16 * 1024
MAX_PREAMBLE_BYTES = 1 << 20
LWSP = b" \t"
# Transport padding allowed after a boundary (RFC 2046 allows some; nobody needs more).
MAX_PADDING_BYTES = 1024


# RFC 2046 5.1.1: boundary := 0*69<bchars> bcharsnospace
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


class MultipartError(ValueError):
    """The body is not a well-formed multipart message (answered with 400)."""


class UnsupportedMediaType(ValueError):
    """The request's Content-Type is not one this endpoint accepts (answered with 415)."""


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """Split `type/subtype; a=b; c="d;e"` into the lower-cased media type and parameters
    (names lower-cased, values unquoted). Quoted strings may contain `;` and `\\"`."""
    media_type, _, rest = value.partition(";")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t;":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        name = rest[i:eq].strip().lower()
        i = eq + 1
        while i < n and rest[i] in " \t":
            i += 1
        if i < n and rest[i] == '"':
            i += 1
            chars = []
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(rest[i])
                i += 1
            i += 1  # closing quote
            val = "".join(chars)
        else:
            end = rest.find(";", i)
            end = n if end < 0 else end
            val = rest[i:end].strip()
            i = end
        if name:
            params[name] = val
    return media_type.strip().lower(), params


def related_boundary(content_type: str, *, accepted_type: str = "application/dicom") -> bytes:
    """The boundary of a `multipart/related` request whose root type is `accepted_type`.

    A missing `type` parameter is tolerated (parts are checked one by one); any other
    media type, or a `type` we do not store, raises UnsupportedMediaType."""
    media_type, params = parse_content_type(content_type or "")
    if media_type != "multipart/related":
        raise UnsupportedMediaType(
            f"Content-Type must be multipart/related; type=\"{accepted_type}\", not {media_type or 'missing'}")
    root_type = params.get("type", "").strip().lower()
    if root_type and parse_content_type(root_type)[0] != accepted_type:
        raise UnsupportedMediaType(
            f"only multipart/related parts of type {accepted_type} are accepted, not {root_type}")
    boundary = params.get("boundary", "")
    if not boundary:
        raise MultipartError("the Content-Type has no boundary parameter")
    if not _BOUNDARY.fullmatch(boundary):
        raise MultipartError("the boundary must be 1 to 70 characters of letters, digits and "
                             "'()+_,-./:=? or spaces, not ending in a space (RFC 2046 5.1.1)")
    return boundary.encode("ascii")


class Part:
    """One body part: its headers, and its content as an iterator of chunks that must be
    consumed before the reader moves on (the reader drains what is left otherwise)."""

    def __init__(self, reader: "MultipartReader", headers: dict[str, str], index: int):
        self._reader = reader
        self.headers = headers
        self.index = index
        self.finished = False

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def chunks(self) -> Iterator[bytes]:
        if self.finished:
            return
        yield from self._reader._part_chunks()
        self.finished = True

    def drain(self) -> None:
        for _ in self.chunks():
            pass


class MultipartReader:
    """Iterate over the parts of a multipart body read from `stream`.

    Raises MultipartError on a body without the boundary, a part header block that is too
    long or broken, or a body that ends before the closing delimiter."""

    def __init__(self, stream: Readable, boundary: bytes, *, read_size: int = READ_SIZE):
        self._read = stream.read
        self._read_size = read_size
        self._delimiter = b"\r\n--" + boundary
        self._keep = len(self._delimiter) - 1
        # A leading CRLF lets a body that starts right with "--boundary" match the delimiter.
        self._buf = bytearray(b"\r\n")
        self._eof = False
        self.bytes_read = 0

    def _fill(self) -> bool:
        if self._eof:
            return False
        data = self._read(self._read_size)
        if not data:
            self._eof = True
            return False
        self.bytes_read += len(data)
        self._buf += data
        return True

    def _ensure(self, n: int) -> bool:
        while len(self._buf) < n:
            if not self._fill():
                return False
        return True

    def __iter__(self) -> Iterator[Part]:
        self._skip_preamble()
        index = 0
        while True:
            if self._after_delimiter_is_close():
                self._drain_epilogue()
                return
            part = Part(self, self._read_headers(), index)
            yield part
            part.drain()
            index += 1

    def _skip_preamble(self) -> None:
        skipped = 0
        while True:
            idx = self._buf.find(self._delimiter)
            if idx >= 0:
                del self._buf[: idx + len(self._delimiter)]
                return
            if len(self._buf) > self._keep:
                skipped += len(self._buf) - self._keep
                del self._buf[: -self._keep]
            if skipped > MAX_PREAMBLE_BYTES or not self._fill():
                raise MultipartError("the body does not contain the boundary given in Content-Type")

    def _after_delimiter_is_close(self) -> bool:
        """After a delimiter: `--` closes the message; otherwise optional transport
        padding, then CRLF, then the next part's headers."""
        if not self._ensure(2):
            raise MultipartError("the body ended after a boundary, without the closing boundary")
        if self._buf[:2] == b"--":
            return True
        padding = 0
        while True:
            # Drop padding as it arrives, and only so much: a body of endless spaces after
            # a boundary must neither fill memory nor keep the CPU busy.
            blank = len(self._buf) - len(self._buf.lstrip(LWSP))
            padding += blank
            del self._buf[:blank]
            if padding > MAX_PADDING_BYTES:
                raise MultipartError("too much padding after a boundary")
            if self._buf or not self._fill():
                break
        if not self._ensure(2) or self._buf[:2] != b"\r\n":
            raise MultipartError("a boundary is not followed by CRLF")
        del self._buf[:2]
        return False

    def _read_headers(self) -> dict[str, str]:
        while True:
            if self._buf[:2] == b"\r\n":  # no headers at all
                del self._buf[:2]
                return {}
            end = self._buf.find(b"\r\n\r\n")
            if end >= 0:
                block = bytes(self._buf[:end])
                del self._buf[: end + 4]
                return _parse_headers(block)
            if len(self._buf) > MAX_HEADER_BYTES:
                raise MultipartError("a part's header block is too long")
            if not self._fill():
                raise MultipartError("the body ended inside a part's headers")

    def _part_chunks(self) -> Iterator[bytes]:
        buf, delimiter, keep = self._buf, self._delimiter, self._keep
        while True:
            idx = buf.find(delimiter)
            if idx >= 0:
                if idx:
                    yield _copy(buf, idx)
                del buf[: idx + len(delimiter)]
                return
            if len(buf) > keep:
                out = _copy(buf, len(buf) - keep)
                del buf[:-keep]
                yield out
            if not self._fill():
                raise MultipartError("the body ended inside a part, before the next boundary "
                                     "(truncated upload?)")

    def _drain_epilogue(self) -> None:
        self._buf.clear()
        while self._fill():
            self._buf.clear()


def _copy(buf: bytearray, end: int) -> bytes:
    """buf[:end] as bytes in one copy (bytes(buf[:end]) makes two: a bytearray, then bytes)."""
    with memoryview(buf) as view, view[:end] as head:
        return bytes(head)


def _parse_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    last = None
    for line in block.decode("latin-1").split("\r\n"):
        if line[:1] in (" ", "\t") and last:  # obsolete line folding
            headers[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise MultipartError("a part header line is malformed")
        last = name.strip().lower()
        headers[last] = value.strip()
    return headers
