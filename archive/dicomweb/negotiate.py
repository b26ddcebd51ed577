"""Accept-header negotiation for WADO-RS (PS3.18 8.7): which media type and transfer
syntax to answer with, or NotAcceptable (406)."""

import re
from dataclasses import dataclass, field

from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

ANY = "*"
UNCOMPRESSED = {ExplicitVRLittleEndian, ImplicitVRLittleEndian}
NATIVE = UNCOMPRESSED | {ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian}
# Compressed syntaxes we encode to on request (lossless only: never degrade an image
# behind a client's back). Availability is checked against pydicom's encoders.
ENCODABLE = {JPEG2000Lossless, JPEGLSLossless, RLELossless}

# Single-frame media types of compressed pixel data (PS3.18 table 8.7.3-2).
FRAME_MEDIA = {
    JPEGBaseline8Bit: "image/jpeg", JPEGExtended12Bit: "image/jpeg", JPEGLosslessSV1: "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    JPEGLSLossless: "image/jls", JPEGLSNearLossless: "image/jls",
    JPEG2000Lossless: "image/jp2", JPEG2000: "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx", "1.2.840.10008.1.2.4.93": "image/jpx",
    RLELossless: "image/dicom-rle",
}
MEDIA_ALIASES = {"image/x-dicom-rle": "image/dicom-rle", "image/x-jls": "image/jls"}


class NotAcceptable(Exception):
    pass


@dataclass
class MediaRange:
    type: str
    params: dict[str, str] = field(default_factory=dict)
    q: float = 1.0

    @property
    def inner(self) -> str:
        """The part type of a multipart range, or the type itself."""
        if self.type in ("multipart/related", "multipart/*"):
            return MEDIA_ALIASES.get(self.params.get("type", "*/*"), self.params.get("type", "*/*"))
        return MEDIA_ALIASES.get(self.type, self.type)

    @property
    def transfer_syntax(self) -> str | None:
        return self.params.get("transfer-syntax")


_SPLIT = re.compile(r',(?=(?:[^"]*"[^"]*")*[^"]*$)')


def parse_accept(header: str | None) -> list[MediaRange]:
    ranges = []
    for raw in _SPLIT.split(header or ""):
        parts = [p.strip() for p in raw.split(";") if p.strip()]
        if not parts:
            continue
        media = MediaRange(parts[0].lower())
        for param in parts[1:]:
            key, _, value = param.partition("=")
            key, value = key.strip().lower(), value.strip().strip('"')
            if key == "q":
                try:
                    media.q = float(value)
                except ValueError:
                    media.q = 0.0
            else:
                media.params[key] = value
        if media.q > 0:
            ranges.append(media)
    ranges.sort(key=lambda m: -m.q)  # stable: equal q keeps the client's order
    return ranges or [MediaRange("*/*")]


def _matches(media: MediaRange, wanted: str) -> bool:
    inner = media.inner
    return inner in (wanted, "*/*", "*") or (inner.endswith("/*") and wanted.startswith(inner[:-1]))


def encodable() -> set[str]:
    from pydicom.pixels import get_encoder

    available = set()
    for uid in ENCODABLE:
        try:
            if get_encoder(uid).is_available:
                available.add(uid)
        except (ValueError, NotImplementedError):
            continue
    return available


def choose_dicom_syntax(header: str | None) -> str:
    """For application/dicom retrieval: the transfer syntax to send, or ANY (as stored).
    Default (no transfer-syntax parameter) is Explicit VR Little Endian."""
    wanted_any_media = False
    for media in parse_accept(header):
        if not _matches(media, "application/dicom"):
            continue
        wanted_any_media = True
        ts = media.transfer_syntax
        if ts is None:
            return ExplicitVRLittleEndian
        if ts == ANY or ts in UNCOMPRESSED or ts in encodable():
            return ts
    raise NotAcceptable("no acceptable transfer syntax: we send application/dicom as stored "
                        "(transfer-syntax=*), Explicit or Implicit VR Little Endian, or lossless "
                        f"{', '.join(sorted(UID(u).name for u in encodable()))}"
                        if wanted_any_media else "WADO-RS sends multipart/related; type=\"application/dicom\"")


def choose_frame_media(header: str | None, stored_ts: str) -> str:
    """For /frames: "application/octet-stream" (decoded frames) or the stored frame's
    compressed media type (e.g. "image/jp2") when the client accepts it."""
    stored_media = FRAME_MEDIA.get(stored_ts)
    for media in parse_accept(header):
        ts = media.transfer_syntax
        if stored_media and media.inner == stored_media and ts in (None, ANY, stored_ts):
            return stored_media
        if stored_media and ts == ANY and _matches(media, stored_media):
            return stored_media
        if _matches(media, "application/octet-stream") and ts in (None, ANY, ExplicitVRLittleEndian):
            return "application/octet-stream"
    raise NotAcceptable("frames are sent as application/octet-stream (uncompressed), or as "
                        f"{stored_media or 'stored'} with transfer-syntax=*")


def choose_image_media(header: str | None, default: str = "image/jpeg") -> str:
    """For /rendered and /thumbnail: image/jpeg or image/png."""
    for media in parse_accept(header):
        inner = media.type if not media.type.startswith("multipart/") else media.inner
        if inner in ("image/jpeg", "image/png"):
            return inner
        if inner in ("*/*", "image/*", "*"):
            return default
    raise NotAcceptable("rendered images are image/jpeg or image/png")
