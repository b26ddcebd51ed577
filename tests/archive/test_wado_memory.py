"""A viewer's WADO requests read only what they answer with: one frame or one bulk element
of a 32 MiB multi-frame instance never brings the whole file into memory, and a request
that could only be answered by reading a large instance whole is refused (413).

The views run in this process (Django test client), so tracemalloc sees every allocation
made while reading the file, decoding and rendering."""

import functools
import tracemalloc

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.pixels.utils import pack_bits
from pydicom.uid import DeflatedExplicitVRLittleEndian, RLELossless

from tests.archive.dicomweb_data import bearer, ingest, url
from tests.dicom_factory import make_ct_series, to_bytes

FRAMES = 64
SIDE = 512
FRAME_BYTES = SIDE * SIDE * 2  # 64 frames: 32 MiB of pixel data
OVERLAY_URL = "bulkdata/60003000"
ICON_URL = "bulkdata/00880200/0/7FE00010"


def _frame(number: int) -> np.ndarray:
    """Frame `number` (1-based): noise, so that RLE does not shrink the file."""
    return np.random.default_rng(number).integers(0, 4096, (SIDE, SIDE), dtype=np.uint16)


def _base(transfer_syntax=None):
    ds = make_ct_series(1, SIDE, SIDE)[0]
    ds.NumberOfFrames = FRAMES
    # Two small bulk data elements a viewer asks for through their BulkDataURIs.
    for elem, vr, value in ((0x0010, "US", SIDE), (0x0011, "US", SIDE), (0x0040, "CS", "G"),
                            (0x0050, "SS", [1, 1]), (0x0100, "US", 1), (0x0102, "US", 0),
                            (0x3000, "OW", pack_bits(np.eye(SIDE, dtype=np.uint8)))):
        ds.add_new(0x60000000 | elem, vr, value)  # overlay 1 (repeating group: no keywords)
    icon = pydicom.Dataset()
    icon.Rows = icon.Columns = 64
    icon.SamplesPerPixel, icon.PhotometricInterpretation = 1, "MONOCHROME2"
    icon.BitsAllocated, icon.BitsStored, icon.HighBit, icon.PixelRepresentation = 8, 8, 7, 0
    icon.PixelData = bytes(range(256)) * 16
    ds.IconImageSequence = [icon]
    if transfer_syntax:
        ds.file_meta.TransferSyntaxUID = transfer_syntax
    return ds


@functools.cache
def native_file() -> bytes:
    ds = _base()
    ds.PixelData = b"".join(_frame(n).tobytes() for n in range(1, FRAMES + 1))
    return to_bytes(ds)


@functools.cache
def rle_file() -> bytes:
    from pydicom.pixels import get_encoder

    encoder = get_encoder(RLELossless)
    one = _base()
    opts = {"rows": SIDE, "columns": SIDE, "samples_per_pixel": 1, "bits_allocated": 16,
            "bits_stored": 16, "pixel_representation": 0, "photometric_interpretation": "MONOCHROME2",
            "number_of_frames": 1}
    # Encoding 64 different frames in pure Python is slow: two distinct frames alternate.
    encoded = {n: encoder.encode(_frame(n).tobytes(), **opts) for n in (1, 2)}
    one.file_meta.TransferSyntaxUID = RLELossless
    one.PixelData = encapsulate([encoded[2 - n % 2] for n in range(1, FRAMES + 1)])
    one["PixelData"].VR = "OB"
    return to_bytes(one)


@functools.cache
def deflated_file() -> bytes:
    ds = _base(DeflatedExplicitVRLittleEndian)
    ds.PixelData = b"".join(_frame(n).tobytes() for n in range(1, FRAMES + 1))
    return to_bytes(ds)


@pytest.fixture
def token(tenant, make_token):
    return make_token(tenant, scopes=("read",))


def instance_url(tenant, data: bytes, rest: str) -> str:
    ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data), stop_before_pixels=True)
    return url(tenant, f"studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                       f"/instances/{ds.SOPInstanceUID}/{rest}")


def peak_of(client, path: str, **headers) -> tuple[int, object, bytes]:
    """(peak Python heap in bytes, response, body) for one GET, body read inside the window.
    The same GET runs once before, untraced: the first request of the process imports
    modules and fills caches (~10 MiB) that are no part of what one request costs."""
    warm = client.get(path, **headers)
    if warm.streaming:
        b"".join(warm.streaming_content)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        response = client.get(path, **headers)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, response, body


def one_part(response, body: bytes) -> bytes:
    assert response.status_code == 200, body[:300]
    boundary = response["Content-Type"].split("boundary=")[1].split(";")[0].encode()
    chunk = body.split(b"--" + boundary)[1]
    return chunk.partition(b"\r\n\r\n")[2][:-2]


@pytest.mark.parametrize("make", [native_file, rle_file], ids=["native", "rle"])
def test_bulk_element_reads_only_that_element(client, tenant, token, make):
    data = make()
    ingest(tenant, data)
    budget = len(data) // 4
    peak, response, body = peak_of(client, instance_url(tenant, data, OVERLAY_URL), **bearer(token))
    assert one_part(response, body) == pack_bits(np.eye(SIDE, dtype=np.uint8))
    assert peak < budget, f"overlay: peak {peak / 2**20:.1f} MiB for a {len(data) / 2**20:.0f} MiB file"
    peak, response, body = peak_of(client, instance_url(tenant, data, ICON_URL), **bearer(token))
    assert one_part(response, body) == bytes(range(256)) * 16
    assert peak < budget, f"icon: peak {peak / 2**20:.1f} MiB for a {len(data) / 2**20:.0f} MiB file"


@pytest.mark.parametrize("make, accept", [
    (native_file, 'multipart/related; type="application/octet-stream"'),
    (rle_file, 'multipart/related; type="application/octet-stream"'),
    (rle_file, 'multipart/related; type="image/dicom-rle"; transfer-syntax=*'),
], ids=["native", "rle-decoded", "rle-as-stored"])
def test_one_frame_reads_only_that_frame(client, tenant, token, make, accept):
    data = make()
    ingest(tenant, data)
    number = 3 if make is native_file else 2  # rle_file alternates frames 1 and 2
    peak, response, body = peak_of(client, instance_url(tenant, data, f"frames/{number}"),
                                   HTTP_ACCEPT=accept, **bearer(token))
    frame = one_part(response, body)
    if "octet-stream" in accept:
        assert frame == _frame(number).tobytes()
    else:
        assert frame.startswith(b"\x02\x00\x00\x00")  # an RLE header: 2 segments (16-bit)
        assert len(frame) < FRAME_BYTES * 2
    assert peak < len(data) // 4, f"peak {peak / 2**20:.1f} MiB for a {len(data) / 2**20:.0f} MiB file"


@pytest.mark.parametrize("make", [native_file, rle_file], ids=["native", "rle"])
def test_rendering_one_frame_reads_only_that_frame(client, tenant, token, make):
    data = make()
    ingest(tenant, data)
    peak, response, body = peak_of(client, instance_url(tenant, data, "frames/2/rendered"),
                                   HTTP_ACCEPT="image/png", **bearer(token))
    assert response.status_code == 200, body[:300]
    assert body.startswith(b"\x89PNG")
    assert peak < len(data) // 4, f"peak {peak / 2**20:.1f} MiB for a {len(data) / 2**20:.0f} MiB file"


def test_whole_file_read_over_the_cap_is_refused(client, tenant, token, settings):
    """A deflated data set can only be read by inflating it whole: above the cap, a clear
    413 instead; below it, the same requests are answered."""
    data = deflated_file()
    ingest(tenant, data)
    requests = [("frames/2", 'multipart/related; type="application/octet-stream"'),
                ("frames/2/rendered", "image/png"), (OVERLAY_URL, "multipart/related; type=\"application/octet-stream\"")]
    settings.WADO_MAX_DECODE_BYTES = 8 * 1024 * 1024
    for rest, accept in requests:
        peak, response, body = peak_of(client, instance_url(tenant, data, rest), HTTP_ACCEPT=accept,
                                       **bearer(token))
        assert response.status_code == 413, (rest, response.status_code, body[:200])
        assert b"too large" in body
        assert peak < FRAMES * FRAME_BYTES // 4, f"{rest}: peak {peak / 2**20:.1f} MiB"
    settings.WADO_MAX_DECODE_BYTES = 64 * 1024 * 1024
    for rest, accept in requests:
        _, response, body = peak_of(client, instance_url(tenant, data, rest), HTTP_ACCEPT=accept,
                                    **bearer(token))
        assert response.status_code == 200, (rest, response.status_code, body[:200])
