"""The streaming multipart/related reader, fed through tiny and odd read sizes so every
boundary straddles a chunk edge somewhere."""

import io

import pytest

from archive.dicomweb.multipart import (
    MultipartError,
    MultipartReader,
    UnsupportedMediaType,
    parse_content_type,
    related_boundary,
)

BOUNDARY = b"b0undary-42"


def body(parts: list[tuple[dict, bytes]], *, preamble=b"", epilogue=b"", close=True) -> bytes:
    out = bytearray(preamble)
    for headers, content in parts:
        out += b"\r\n--" + BOUNDARY + b"\r\n" if out else b"--" + BOUNDARY + b"\r\n"
        for k, v in headers.items():
            out += f"{k}: {v}\r\n".encode()
        out += b"\r\n" + content
    if close:
        out += b"\r\n--" + BOUNDARY + b"--" + epilogue
    return bytes(out)


def read_all(data: bytes, read_size: int) -> list[tuple[dict, bytes]]:
    reader = MultipartReader(io.BytesIO(data), BOUNDARY, read_size=read_size)
    return [(p.headers, b"".join(p.chunks())) for p in reader]


# Content that contains near-misses of the delimiter, CRLFs and dashes.
TRICKY = b"\r\n--b0undary-4\r\n-- \r\n" + bytes(range(256)) * 3 + b"\r\n--b0undar"


@pytest.mark.parametrize("read_size", [1, 2, 3, 7, 13, 64, 1 << 20])
def test_parts_survive_any_chunking(read_size):
    parts = [({"Content-Type": "application/dicom"}, TRICKY), ({}, b""), ({"X-A": "1"}, b"x" * 5000)]
    data = body(parts, preamble=b"ignored preamble\r\n", epilogue=b"\r\nepilogue")
    got = read_all(data, read_size)
    assert [c for _, c in got] == [TRICKY, b"", b"x" * 5000]
    assert got[0][0] == {"content-type": "application/dicom"} and got[2][0] == {"x-a": "1"}


def test_unconsumed_part_is_drained():
    data = body([({}, b"a" * 100), ({}, b"b" * 100)])
    reader = MultipartReader(io.BytesIO(data), BOUNDARY, read_size=9)
    assert [p.index for p in reader] == [0, 1]


def test_part_is_streamed_in_bounded_chunks():
    content = b"z" * (3 << 20)
    reader = MultipartReader(io.BytesIO(body([({}, content)])), BOUNDARY, read_size=1 << 16)
    sizes = [len(c) for p in reader for c in p.chunks()]
    assert sum(sizes) == len(content) and max(sizes) <= 1 << 16


@pytest.mark.parametrize("data, message", [
    (body([({}, b"abc")], close=False), "before the next boundary"),
    (b"no boundary anywhere" * 10, "does not contain the boundary"),
    (b"--" + BOUNDARY + b"\r\nContent-Type: x\r\n", "inside a part's headers"),
    (b"--" + BOUNDARY + b"\r\nbroken header line\r\n\r\nabc\r\n--" + BOUNDARY + b"--", "malformed"),
    (b"--" + BOUNDARY + b"junk\r\n\r\nabc\r\n--" + BOUNDARY + b"--", "not followed by CRLF"),
    (body([({}, b"abc")], close=False) + b"\r\n--" + BOUNDARY, "without the closing boundary"),
])
def test_malformed_bodies(data, message):
    with pytest.raises(MultipartError, match=message):
        read_all(data, 5)


def test_transport_padding_after_boundary_is_allowed():
    data = b"--" + BOUNDARY + b"  \t\r\n\r\nabc\r\n--" + BOUNDARY + b"--"
    assert read_all(data, 4) == [({}, b"abc")]


@pytest.mark.parametrize("header", [
    'multipart/related; type="application/dicom"; boundary="b0undary-42"',
    "multipart/related; type=application/dicom; boundary=b0undary-42",
    "Multipart/Related;boundary=b0undary-42",
    'multipart/related; boundary="b0undary-42"; type="application/dicom; transfer-syntax=*"',
])
def test_accepted_content_types(header):
    assert related_boundary(header) == BOUNDARY


@pytest.mark.parametrize("header, error", [
    ("application/dicom", UnsupportedMediaType),
    ("multipart/form-data; boundary=x", UnsupportedMediaType),
    ('multipart/related; type="application/dicom+json"; boundary=x', UnsupportedMediaType),
    ("", UnsupportedMediaType),
    ('multipart/related; type="application/dicom"', MultipartError),
    ("multipart/related; boundary=" + "x" * 71, MultipartError),
])
def test_refused_content_types(header, error):
    with pytest.raises(error):
        related_boundary(header)


def test_parse_content_type_quoting():
    assert parse_content_type('A/B; x="semi;colon \\"q\\""; Y=2') == (
        "a/b", {"x": 'semi;colon "q"', "y": "2"})


def test_padding_after_a_boundary_is_bounded():
    """Spaces after a boundary are transport padding; megabytes of them are an attack on
    memory and CPU, and end the body with a clear error."""
    good = body([({"Content-Type": "application/dicom"}, b"x" * 10)])
    assert read_all(good.replace(b"--" + BOUNDARY + b"\r\n", b"--" + BOUNDARY + b"   \r\n", 1), 7)
    padded = good.replace(b"--" + BOUNDARY + b"\r\n", b"--" + BOUNDARY + b" " * (4 << 20) + b"\r\n", 1)
    with pytest.raises(MultipartError, match="too much padding"):
        read_all(padded, 1 << 20)
