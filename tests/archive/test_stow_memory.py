"""A ~200 MB STOW-RS body is streamed: the server's Python heap stays small.

The body is generated on the fly (never held by the test either) and posted with a known
Content-Length to the live server, which runs in this process: tracemalloc sees every
allocation the server makes while parsing, spooling, hashing and ingesting it."""

import struct
import tracemalloc

import pytest
import requests

from archive.models import Instance
from tests.archive.stow_helpers import private_dirs  # noqa: F401
from tests.dicom_factory import make_ct_series, to_bytes

pytestmark = pytest.mark.usefixtures("private_dirs")

ROWS = COLS = 4096  # 32 MiB of pixel data per instance
PARTS = 6
CHUNK = 1 << 20


class StreamedBody:
    """An iterable with a length: requests streams it with Content-Length, not chunked."""

    def __init__(self, boundary: str):
        self.boundary = boundary.encode()
        self.pieces = []
        for ds in make_ct_series(PARTS, 8, 8):
            ds.Rows, ds.Columns = ROWS, COLS
            del ds.PixelData
            # Pixel Data (7FE0,0010) OW, explicit VR little endian, appended as the last element.
            header = to_bytes(ds) + b"\xe0\x7f\x10\x00OW\x00\x00" + struct.pack("<I", ROWS * COLS * 2)
            self.pieces.append(header)
        self.pixel_bytes = ROWS * COLS * 2

    def _part_open(self, header: bytes) -> bytes:
        return b"--" + self.boundary + b"\r\nContent-Type: application/dicom\r\n\r\n" + header

    def __len__(self) -> int:
        closing = len(b"--" + self.boundary + b"--\r\n")
        return sum(len(self._part_open(h)) + self.pixel_bytes + 2 for h in self.pieces) + closing

    def __iter__(self):
        zeros = bytes(CHUNK)
        for header in self.pieces:
            yield self._part_open(header)
            left = self.pixel_bytes
            while left:
                n = min(left, CHUNK)
                yield zeros[:n]
                left -= n
            yield b"\r\n"
        yield b"--" + self.boundary + b"--\r\n"


def test_200mb_body_is_streamed_with_small_heap(live_server, tenant, make_token):
    token = make_token(tenant, scopes=("upload",))
    body = StreamedBody("streamed-boundary")
    assert len(body) > 190 * 1024 * 1024
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        response = requests.post(
            f"{live_server.url}/t/{tenant.slug}/dicomweb/studies", data=body, timeout=300,
            headers={"Authorization": f"Bearer {token}", "Content-Length": str(len(body)),
                     "Content-Type": 'multipart/related; type="application/dicom"; boundary=streamed-boundary'})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 200, response.text
    assert Instance.objects.for_tenant(tenant).count() == PARTS
    assert peak < 24 * 1024 * 1024, f"peak Python heap {peak / 2**20:.1f} MiB"
