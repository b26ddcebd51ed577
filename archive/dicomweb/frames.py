"""Single frames of an instance's pixel data, for /frames and /rendered.

Uncompressed little-endian files: the frame's bytes are read straight from their offset
in the file. Compressed files: the stored fragment(s) of the frame, or the frame decoded
by pydicom's pixel handlers.
"""

from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels import pixel_array
from pydicom.uid import UID


class FrameError(ValueError):
    """The request names frames the instance does not have, or it has no pixel data."""


def read_header(fh: BinaryIO) -> Dataset:
    """The dataset with pixel data left on disk (its offset is known)."""
    fh.seek(0)
    return pydicom.dcmread(fh, defer_size=1024)


def frame_count(ds: Dataset) -> int:
    try:
        return max(int(ds.get("NumberOfFrames") or 1), 1)
    except (TypeError, ValueError):
        return 1


def check_frames(ds: Dataset, numbers: list[int]) -> None:
    if "PixelData" not in ds:
        raise FrameError("this instance has no pixel data")
    count = frame_count(ds)
    bad = [n for n in numbers if n < 1 or n > count]
    if bad:
        raise FrameError(f"frame {bad[0]} does not exist: the instance has {count} frame(s)")


def _frame_length(ds: Dataset) -> int | None:
    bits = int(ds.BitsAllocated)
    if bits % 8:
        return None  # packed 1-bit data: frames need not start on a byte
    return int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * bits // 8


def native_frames(fh: BinaryIO, ds: Dataset, numbers: list[int]) -> Iterator[bytes]:
    """Decoded frames as little-endian bytes in the stored sample layout."""
    ts = UID(ds.file_meta.TransferSyntaxUID)
    raw = ds.get_item(0x7FE00010, keep_deferred=True)
    length = _frame_length(ds)
    offset = getattr(raw, "value_tell", None)
    planar = int(ds.get("PlanarConfiguration", 0) or 0)
    direct = (not ts.is_compressed and ts.is_little_endian and not ts.is_deflated
              and length is not None and offset is not None)
    for number in numbers:
        if direct:
            fh.seek(offset + (number - 1) * length)
            yield fh.read(length)
        else:
            # Decompressed colour frames are RGB, as in a decompressed instance.
            arr, _ = decode_frame(fh, number - 1, as_rgb=ts.is_compressed)
            if planar and arr.ndim == 3 and not ts.is_compressed:
                arr = np.moveaxis(arr, -1, 0)  # keep the stored planar layout
            yield arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


def compressed_frames(fh: BinaryIO, ds: Dataset, numbers: list[int]) -> Iterator[bytes]:
    """The stored encapsulated frames, as they are."""
    fh.seek(0)
    full = pydicom.dcmread(fh)
    count = frame_count(full)
    wanted = set(numbers)
    frames = {}
    for index, frame in enumerate(generate_frames(full.PixelData, number_of_frames=count), 1):
        if index in wanted:
            frames[index] = frame
    for number in numbers:
        yield frames[number]


def decode_frame(fh: BinaryIO, index: int, *, as_rgb: bool = True) -> tuple[np.ndarray, Dataset]:
    """Frame `index` (0-based) decoded, with the dataset's non-pixel elements.

    Decodes straight from the file (only that frame); files pydicom cannot decode that
    way (deflated, or with a body in another VR encoding than the meta says) are read
    whole first."""
    fh.seek(0)
    ds = Dataset()
    try:
        return pixel_array(fh, index=index, ds_out=ds, as_rgb=as_rgb), ds
    except (AttributeError, ValueError, NotImplementedError):
        fh.seek(0)
        full = pydicom.dcmread(fh)
        full.pixel_array_options(index=index, as_rgb=as_rgb)
        return full.pixel_array, full


def parse_frame_list(text: str) -> list[int]:
    try:
        numbers = [int(n) for n in text.split(",") if n.strip()]
    except ValueError as exc:
        raise FrameError(f"bad frame list {text!r}: use 1-based numbers separated by commas") from exc
    if not numbers:
        raise FrameError("no frame numbers given")
    return numbers
