"""Change an instance's transfer syntax for WADO-RS, one instance in memory at a time.

Decoding and encoding are pydicom's pixel handlers (with the pylibjpeg, openjpeg, libjpeg
and pyjpegls plugins); this module only decides what to call.
"""

import io
from typing import BinaryIO

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from archive.dicomweb.negotiate import UNCOMPRESSED


class TranscodeError(Exception):
    """This instance cannot be sent in the requested transfer syntax."""


def _fix_missing_vrs(ds: Dataset) -> None:
    # Files whose meta says explicit VR but whose body is implicit are read with VRs
    # unresolved for some elements; writing explicit VR needs them.
    for elem in ds.iterall():
        if not elem.VR:
            try:
                elem.VR = dictionary_VR(elem.tag)
            except KeyError:
                elem.VR = "UN"


def _to_little_endian(ds: Dataset) -> None:
    """A big-endian dataset's values are parsed already; only OW pixel data must be swapped."""
    if "PixelData" in ds:
        arr = ds.pixel_array
        ds.PixelData = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
    ds.set_original_encoding(False, True, ds.original_character_set)


def transcode_dataset(ds: Dataset, target: str) -> Dataset:
    source = UID(ds.file_meta.TransferSyntaxUID)
    _fix_missing_vrs(ds)
    if not source.is_little_endian:
        _to_little_endian(ds)
    has_pixels = "PixelData" in ds
    # pydicom gives the result a new SOP Instance UID unless told not to: it is the same
    # instance in another encoding, and must stay one (a viewer would show two images).
    if source.is_compressed and has_pixels:
        ds.decompress(generate_instance_uid=False)
    elif source.is_compressed:
        raise TranscodeError(f"cannot change {source.name} without pixel data")
    if target in UNCOMPRESSED or not has_pixels:
        # Objects without pixel data have nothing to compress: sent as Explicit VR LE.
        ds.file_meta.TransferSyntaxUID = target = target if target in UNCOMPRESSED else ExplicitVRLittleEndian
        # Said of the data set too: a DIMSE peer encodes it as the file meta says only when
        # both agree (pynetdicom refuses an explicit-VR data set under an implicit syntax).
        ds.set_original_encoding(target == ImplicitVRLittleEndian, True, ds.original_character_set)
        return ds
    try:
        ds.compress(target, generate_instance_uid=False)
    except (ValueError, RuntimeError) as exc:
        raise TranscodeError(f"cannot encode as {UID(target).name}: {exc}") from exc
    return ds


def transcode(fh: BinaryIO, target: str) -> bytes:
    """The Part 10 bytes of the instance in `fh`, in transfer syntax `target`."""
    try:
        ds = pydicom.dcmread(fh)
        ds = transcode_dataset(ds, target)
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True,
                   implicit_vr=ds.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian)
        return out.getvalue()
    except TranscodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - decoders raise many types on odd data
        raise TranscodeError(f"cannot convert to {UID(target).name}: {type(exc).__name__}: {exc}") from exc
