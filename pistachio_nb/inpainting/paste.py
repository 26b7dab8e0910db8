"""Crop around the mask, size the crop for the model, and paste the result back without touching unmasked pixels.

"Only masked" inpainting (A1111's name; diffusers' `padding_mask_crop`): a small masked area of a
big photo gets the model's whole native resolution instead of a few dozen latent pixels. The paste
blends with the feathered mask, so every pixel where that mask is 0 is the original byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

Box = tuple[int, int, int, int]  # left, top, right, bottom (right/bottom exclusive, like PIL)
MAX_ASPECT = 2.0  # a thinner crop is widened with context: SDXL does poorly far from square


@dataclass(frozen=True)
class Crop:
    """Where the model works: `box` in the original image, resized to `work_size` for the model."""

    box: Box
    work_size: tuple[int, int]


def mask_bbox(mask: Image.Image) -> Box:
    """Bounding box of the mask's non-zero pixels."""
    box = mask.getbbox()
    if box is None:
        raise ValueError("empty mask has no bounding box")
    return box


def padded_box(mask: Image.Image, padding: int) -> Box:
    """The mask's bounding box grown by `padding` pixels of context on each side, clipped to the image."""
    x0, y0, x1, y1 = mask_bbox(mask)
    w, h = mask.size
    return max(0, x0 - padding), max(0, y0 - padding), min(w, x1 + padding), min(h, y1 + padding)


def widen(box: Box, size: tuple[int, int], max_aspect: float = MAX_ASPECT) -> Box:
    """Grow the short side of `box` (centred, clipped to the image) until its aspect is at most `max_aspect`."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if w > max_aspect * h:
        y0, y1 = _grow_span(y0, y1, round(w / max_aspect), size[1])
    elif h > max_aspect * w:
        x0, x1 = _grow_span(x0, x1, round(h / max_aspect), size[0])
    return x0, y0, x1, y1


def _grow_span(lo: int, hi: int, want: int, limit: int) -> tuple[int, int]:
    """Span [lo, hi) grown to `want` pixels around its centre, shifted/clipped to [0, limit)."""
    want = min(want, limit)
    lo = min(max(0, (lo + hi - want) // 2), limit - want)
    return lo, lo + want


def work_size(box_size: tuple[int, int], native: int, multiple: int = 8) -> tuple[int, int]:
    """Same aspect as the box with about `native`^2 pixels, sides a multiple of `multiple` (the VAE's factor)."""
    w, h = box_size
    scale = native / (w * h) ** 0.5
    return tuple(max(multiple, round(side * scale / multiple) * multiple) for side in (w, h))


def plan_crop(mask: Image.Image, only_masked: bool, padding: int, native: int, multiple: int = 8) -> Crop:
    """The crop to inpaint: the padded mask box (only-masked mode) or the whole image, at model resolution."""
    box = widen(padded_box(mask, padding), mask.size) if only_masked else (0, 0, *mask.size)
    return Crop(box, work_size((box[2] - box[0], box[3] - box[1]), native, multiple))


def crop_for_model(image: Image.Image, crop: Crop, resample: int = Image.LANCZOS) -> Image.Image:
    """The crop's region of `image`, resized to the model's working size."""
    return image.crop(crop.box).resize(crop.work_size, resample)


def paste_back(original: Image.Image, generated: Image.Image, soft_mask: Image.Image, crop: Crop) -> Image.Image:
    """Resize the model's output to the crop box and blend it in with the soft mask; mask 0 = original pixel."""
    x0, y0, x1, y1 = crop.box
    patch = np.asarray(generated.convert("RGB").resize((x1 - x0, y1 - y0), Image.LANCZOS), dtype=np.float32)
    out = np.array(original.convert("RGB"))
    region = out[y0:y1, x0:x1]
    alpha = np.asarray(soft_mask, dtype=np.float32)[y0:y1, x0:x1, None] / 255.0
    blended = np.rint(region * (1 - alpha) + patch * alpha).astype(np.uint8)
    keep = alpha[..., 0] == 0
    blended[keep] = region[keep]  # exact original where the mask is 0, whatever the float rounding
    out[y0:y1, x0:x1] = blended
    return Image.fromarray(out)
