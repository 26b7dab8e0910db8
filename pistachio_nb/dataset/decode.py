"""Open one image file safely: header checks before decoding, reduced-scale JPEG decode, EXIF orientation, RGB.

Shared by ingest (small analysis copies) and layout (bucket-sized copies), so both see the same pixels.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageColor, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = {"JPEG", "MPO", "PNG", "WEBP"}  # MPO: the multi-picture JPEG many phones and cameras write
ROTATED_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that swap width and height


class RejectedImage(Exception):
    """A file that cannot enter the dataset; the message is the manifest's `reason`."""


@dataclass(frozen=True)
class Limits:
    """Refusal thresholds checked on the header, before any pixel is decoded."""

    min_side: int
    max_pixels: int


def open_checked(data: bytes, limits: Limits) -> tuple[Image.Image, tuple[int, int]]:
    """Open encoded bytes, refuse non-images and out-of-range sizes; return the image and its displayed size."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our max_pixels check below decides
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as err:
        raise RejectedImage(f"too many pixels (decompression bomb guard): {err}") from None
    except UnidentifiedImageError:
        raise RejectedImage("not an image (content is not JPEG/PNG/WebP whatever the extension)") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise RejectedImage(f"unreadable header: {err}") from None
    if im.format not in ALLOWED_FORMATS:
        raise RejectedImage(f"unsupported format {im.format} (allowed: {', '.join(sorted(ALLOWED_FORMATS))})")
    w, h = im.size
    if w * h > limits.max_pixels:
        raise RejectedImage(f"too many pixels: {w}x{h} > max_pixels {limits.max_pixels} (decompression bomb guard)")
    if min(w, h) < limits.min_side:
        raise RejectedImage(f"too small: {w}x{h}, shorter side below min_side {limits.min_side}")
    orientation = _orientation(im)
    return im, ((h, w) if orientation in ROTATED_ORIENTATIONS else (w, h))


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1) or 1)
    except Exception:  # a broken EXIF block must not lose an otherwise good image
        return 1


def decode_upright(im: Image.Image, min_size: tuple[int, int] | None, background: tuple[int, int, int], mode: str = "RGB") -> Image.Image:
    """Decode to the end (catching truncation), at reduced JPEG scale when `min_size` allows; upright, in `mode`.

    `min_size` is (width, height) upright; the result is at least that big. `mode="L"` lets a colour JPEG
    decode only its luminance channel, about twice as fast, which is all hashing and blur need.
    """
    orientation = _orientation(im)
    if min_size is not None and im.format in ("JPEG", "MPO"):
        swap = orientation in ROTATED_ORIENTATIONS
        im.draft("CMYK" if im.mode == "CMYK" else mode, (min_size[1], min_size[0]) if swap else min_size)
    try:
        im.load()
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        raise RejectedImage(f"truncated or corrupt image data: {err}") from None
    if orientation != 1:
        im = ImageOps.exif_transpose(im)
    if im.mode != mode:
        im = to_rgb(im, background)
    return im if im.mode == mode else im.convert(mode)


def high_depth_to_8bit(values: np.ndarray) -> np.ndarray:
    """16/32-bit grey to 8-bit: 0-255 data (an 8-bit image saved as 16-bit) kept as is, else scaled from the
    container's range (65535, or the maximum above it), so neither goes black nor clips."""
    values = values.astype(np.int64).clip(0, None)
    top = int(values.max(initial=0))
    if top <= 255:
        return values.astype(np.uint8)
    return (values * 255 // max(65535, top)).astype(np.uint8)


def to_rgb(im: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """RGB from any mode: high bit depth scaled by its real range, palette/alpha composited on `background`."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        im = Image.fromarray(high_depth_to_8bit(np.asarray(im)), "L")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("LA", "PA", "La", "RGBa"):
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        base = Image.new("RGB", im.size, background)
        base.paste(im, mask=im.getchannel("A"))
        return base
    return im if im.mode == "RGB" else im.convert("RGB")


def draft_copy(path: Path, side: int) -> Image.Image:
    """An upright RGB decode whose longest side is at least `side` (or the whole image when it is smaller),
    at the cheapest JPEG scale that allows it and with no resampling: the caller shrinks it as it needs."""
    im, (w, h) = open_checked(Path(path).read_bytes(), Limits(1, 2**62))
    scale = min(1.0, side / max(w, h))
    return decode_upright(im, (max(1, round(w * scale)), max(1, round(h * scale))), (255, 255, 255))


def small_copy(path: Path, side: int) -> Image.Image:
    """An upright RGB copy whose longest side is at most `side` (reduced-scale decode, so big photos stay cheap)."""
    out = draft_copy(path, side)
    out.thumbnail((side, side))
    return out


def parse_colour(colour: str) -> tuple[int, int, int]:
    """A colour name or '#rrggbb' -> (r, g, b)."""
    return ImageColor.getrgb(colour)[:3]
