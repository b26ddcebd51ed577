"""Single frames of an instance's pixel data, for /frames and /rendered.

Uncompressed little-endian files: the frame's bytes are read straight from their offset
in the file. Compressed files: the stored fragment(s) of the frame, read from the file
(only that frame's), or the frame decoded by pydicom's pixel handlers (which also read
only that frame). Files that can only be read whole (deflated, or with a body in another
VR encoding than the meta says) are refused above settings.WADO_MAX_DECODE_BYTES: an
`archive.view` request must not be able to make the server hold a 4 GB file in memory.
"""

import os
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import pydicom
from django.conf import settings
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames, get_frame
from pydicom.pixels import pixel_array
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian


class FrameError(ValueError):
    """The request names frames the instance does not have, or it has no pixel data."""


class TooLarge(Exception):
    """Answering needs the whole instance in memory, and it is larger than the cap."""


def max_decode_bytes() -> int:
    return settings.WADO_MAX_DECODE_BYTES


def _meta_transfer_syntax(fh: BinaryIO) -> str:
    """The transfer syntax from the file meta group alone (reading on may inflate)."""
    from pydicom.filereader import _read_file_meta_info, read_preamble

    fh.seek(0)
    try:
        read_preamble(fh, False)
        return str(_read_file_meta_info(fh).get("TransferSyntaxUID", ""))
    except Exception:  # noqa: BLE001 - dcmread says what is wrong with the file
        return ""
    finally:
        fh.seek(0)


def check_whole_read(fh: BinaryIO, *, deflated: bool | None = None) -> None:
    """Raise TooLarge if reading `fh` whole would hold more than the cap: the file, or
    for a deflated data set what it inflates to (counted without keeping it)."""
    from archive.ingest.parse import inflated_size

    cap = max_decode_bytes()
    too_large = TooLarge(f"instance too large to read whole here (over {cap} bytes); "
                         "retrieve it as application/dicom instead")
    position = fh.tell()
    size = fh.seek(0, os.SEEK_END)  # the plaintext size (tier-1 files are encrypted)
    fh.seek(position)
    if size > cap:
        raise too_large
    if deflated is None:
        deflated = _meta_transfer_syntax(fh) == DeflatedExplicitVRLittleEndian
    if deflated:
        try:
            fits = inflated_size(fh, cap) is not None
        finally:
            fh.seek(position)
        if not fits:
            raise too_large


def read_header(fh: BinaryIO, indexed_ts: str | None = None) -> Dataset:
    """The dataset with pixel data and other large values left on disk (their offsets
    are known). A deflated data set has no offsets in the file: pydicom inflates it
    whole, so it is read whole, within the cap. `indexed_ts`: the transfer syntax the
    index holds for the file (ingest took it from this file's meta), which spares each
    read (a viewer asks for every frame) a first pass over the meta group."""
    if (indexed_ts or _meta_transfer_syntax(fh)) == DeflatedExplicitVRLittleEndian:
        check_whole_read(fh, deflated=True)
        fh.seek(0)
        return pydicom.dcmread(fh)
    fh.seek(0)
    return pydicom.dcmread(fh, defer_size=1024)


def _deferred(ds: Dataset, tag: int) -> RawDataElement | None:
    """The element if its value is still on disk at a known offset, else None."""
    raw = ds.get_item(tag, keep_deferred=True)
    if isinstance(raw, RawDataElement) and raw.value is None and raw.value_tell is not None:
        return raw
    return None


def needs_whole_read(ds: Dataset) -> bool:
    """Whether pydicom can decode a frame of this file only by reading it whole (the
    fallback in decode_frame): a body in another encoding than its transfer syntax."""
    ts = UID(ds.file_meta.TransferSyntaxUID)
    if ts.is_deflated or not ts.is_transfer_syntax:
        return False  # deflated: read whole (and checked) by read_header already
    return tuple(ds.original_encoding) != (ts.is_implicit_VR, ts.is_little_endian)


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
    raw = _deferred(ds, 0x7FE00010)
    length = _frame_length(ds)
    offset = raw.value_tell if raw is not None else None
    planar = int(ds.get("PlanarConfiguration", 0) or 0)
    direct = (not ts.is_compressed and ts.is_little_endian and not ts.is_deflated
              and length is not None and offset is not None)
    for number in numbers:
        if direct:
            fh.seek(offset + (number - 1) * length)
            yield fh.read(length)
        else:
            # Decompressed colour frames are RGB, as in a decompressed instance.
            if raw is None and ts.is_deflated:
                arr = _decode_loaded(ds, number - 1, as_rgb=ts.is_compressed)  # read whole already
            else:
                arr, _ = decode_frame(fh, number - 1, as_rgb=ts.is_compressed)
            if planar and arr.ndim == 3 and not ts.is_compressed:
                arr = np.moveaxis(arr, -1, 0)  # keep the stored planar layout
            yield arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


def compressed_frames(fh: BinaryIO, ds: Dataset, numbers: list[int]) -> Iterator[bytes]:
    """The stored encapsulated frames, as they are, reading only their fragments."""
    count = frame_count(ds)
    extended = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        extended = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    raw = _deferred(ds, 0x7FE00010)
    if raw is None:
        # Small enough to have been read with the header (or a deflated file read whole).
        pixels = ds.PixelData
        for number in numbers:
            yield get_frame(pixels, number - 1, number_of_frames=count, extended_offsets=extended)
        return
    if numbers == sorted(set(numbers)):
        # Ascending (e.g. all frames for /bulkdata/7FE00010): one pass over the fragments.
        fh.seek(raw.value_tell)
        wanted = iter(numbers)
        target = next(wanted)
        for index, frame in enumerate(generate_frames(fh, number_of_frames=count,
                                                      extended_offsets=extended), 1):
            if index == target:
                yield frame
                target = next(wanted, None)
                if target is None:
                    return
        raise FrameError(f"frame {target} is missing from the encapsulated pixel data")
    for number in numbers:
        fh.seek(raw.value_tell)
        yield get_frame(fh, number - 1, number_of_frames=count, extended_offsets=extended)


def _decode_loaded(ds: Dataset, index: int, *, as_rgb: bool) -> np.ndarray:
    ds.pixel_array_options(index=index, as_rgb=as_rgb)
    return ds.pixel_array


def decode_frame(fh: BinaryIO, index: int, *, as_rgb: bool = True) -> tuple[np.ndarray, Dataset]:
    """Frame `index` (0-based) decoded, with the dataset's non-pixel elements.

    Decodes straight from the file (only that frame); files pydicom cannot decode that
    way (deflated, or with a body in another VR encoding than the meta says) are read
    whole first, if they are within the cap (else TooLarge)."""
    fh.seek(0)
    ds = Dataset()
    try:
        return pixel_array(fh, index=index, ds_out=ds, as_rgb=as_rgb), ds
    except (AttributeError, ValueError, NotImplementedError):
        check_whole_read(fh)
        fh.seek(0)
        full = pydicom.dcmread(fh)
        return _decode_loaded(full, index, as_rgb=as_rgb), full


def parse_frame_list(text: str) -> list[int]:
    try:
        numbers = [int(n) for n in text.split(",") if n.strip()]
    except ValueError as exc:
        raise FrameError(f"bad frame list {text!r}: use 1-based numbers separated by commas") from exc
    if not numbers:
        raise FrameError("no frame numbers given")
    return numbers
