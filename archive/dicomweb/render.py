"""Rendered images (PS3.18 8.3.5.1.3 and 10.4.1.1.3): one frame to 8-bit PNG or JPEG.

Grayscale: Modality LUT, then the VOI (the `window` query parameter, else the file's
window or VOI LUT, else the frame's min/max), then MONOCHROME1 inverted. Colour: palette
applied, YBR converted to RGB by pydicom, high bit depths scaled.
"""

import io
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

from archive.dicomweb.frames import decode_frame

FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG"}
FUNCTIONS = ("linear", "linear_exact", "sigmoid")


class RenderError(ValueError):
    pass


@dataclass
class RenderOptions:
    window: tuple[float, float, str] | None = None  # center, width, function
    viewport: tuple[int, int] | None = None
    quality: int = 90
    media: str = "image/jpeg"


def parse_options(params, media: str) -> RenderOptions:
    """From the query parameters of a /rendered request (PS3.18 8.3.5.1.3)."""
    options = RenderOptions(media=media)
    if params.get("window"):
        parts = params["window"].split(",")
        try:
            center, width = float(parts[0]), float(parts[1])
        except (ValueError, IndexError) as exc:
            raise RenderError("window must be center,width[,function]") from exc
        function = (parts[2].strip().lower().replace("-", "_") if len(parts) > 2 else "linear")
        if width <= 0 or function not in FUNCTIONS:
            raise RenderError("window width must be > 0 and function linear, linear-exact or sigmoid")
        options.window = (center, width, function)
    if params.get("viewport"):
        try:
            vw, vh = (int(v) for v in params["viewport"].split(",")[:2])
        except ValueError as exc:
            raise RenderError("viewport must be width,height") from exc
        if not (0 < vw <= 4096 and 0 < vh <= 4096):
            raise RenderError("viewport sides must be between 1 and 4096")
        options.viewport = (vw, vh)
    if params.get("quality"):
        try:
            options.quality = int(params["quality"])
        except ValueError as exc:
            raise RenderError("quality must be an integer 1-100") from exc
        if not 1 <= options.quality <= 100:
            raise RenderError("quality must be an integer 1-100")
    return options


def _first(value) -> float:
    return float(value[0] if isinstance(value, MultiValue | list) else value)


def _window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """PS3.3 C.11.2.1.2 to 0..1."""
    if function == "sigmoid":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "linear_exact":
        return np.clip((values - center) / width + 0.5, 0.0, 1.0)
    if width <= 1:
        return (values > center - 0.5).astype(np.float64)
    return np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


def _stretch(values: np.ndarray) -> np.ndarray:
    low, high = float(np.min(values)), float(np.max(values))
    if high <= low:
        return np.zeros_like(values, dtype=np.float64)
    return (values - low) / (high - low)


def _grayscale(arr: np.ndarray, ds: Dataset, options: RenderOptions) -> np.ndarray:
    if options.window:
        unit = _window(apply_modality_lut(arr, ds).astype(np.float64), *options.window)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        function = str(ds.get("VOILUTFunction", "LINEAR")).lower().replace("-", "_")
        unit = _window(apply_modality_lut(arr, ds).astype(np.float64), _first(ds.WindowCenter),
                       max(_first(ds.WindowWidth), 1.0), function if function in FUNCTIONS else "linear")
    elif "VOILUTSequence" in ds:
        unit = _stretch(apply_voi_lut(apply_modality_lut(arr, ds), ds, index=0).astype(np.float64))
    else:
        unit = _stretch(apply_modality_lut(arr, ds).astype(np.float64))
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        unit = 1.0 - unit
    return np.rint(unit * 255).astype(np.uint8)


def _colour(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    if ds.get("PhotometricInterpretation") == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
    if arr.dtype != np.uint8:
        bits = int(ds.get("BitsStored", 8)) if ds.get("PhotometricInterpretation") != "PALETTE COLOR" else 16
        arr = np.clip(arr.astype(np.float64) * 255.0 / ((1 << bits) - 1), 0, 255).astype(np.uint8)
    return arr


def frame_image(fh: BinaryIO, frame_index: int, options: RenderOptions) -> bytes:
    """Render frame `frame_index` (0-based) of the instance in `fh`."""
    arr, ds = decode_frame(fh, frame_index)
    if ds.get("PhotometricInterpretation") == "PALETTE COLOR" or int(ds.get("SamplesPerPixel", 1)) > 1:
        pixels = _colour(arr, ds)
        mode = "RGB"
    else:
        pixels = _grayscale(arr, ds, options)
        mode = "L"
    image = Image.fromarray(pixels, mode=mode)
    if options.viewport:
        image.thumbnail(options.viewport, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if options.media == "image/png":
        image.save(out, "PNG", compress_level=1)
    else:
        image.save(out, "JPEG", quality=options.quality)
    return out.getvalue()
