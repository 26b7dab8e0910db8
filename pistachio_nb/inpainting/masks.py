"""Inpainting masks from params: shapes and/or a mask file, grown or shrunk, feathered; plus the views that show them.

Convention (diffusers, ComfyUI, A1111 alike): white (255) = repaint, black (0) = keep. Two masks
come out: the `hard` one the model is told to repaint, and the `soft` (feathered) one used to blend
the result back, so the seam fades over `mask_feather` pixels instead of showing an edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..errors import InputDataError
from .params import MaskRegion


class MaskError(InputDataError):
    """The mask cannot be used: empty, wrong size, or unreadable."""


@dataclass(frozen=True)
class Masks:
    """The hard mask (what the model repaints) and the soft one (how the result is blended back), both mode L."""

    hard: Image.Image
    soft: Image.Image


def pixel_box(region: MaskRegion, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The region's box in whole pixels of an image of `size` (relative boxes scale with the image)."""
    x0, y0, x1, y1 = region.box
    if region.units == "relative":
        w, h = size
        x0, x1, y0, y1 = x0 * w, x1 * w, y0 * h, y1 * h
    return round(x0), round(y0), round(x1), round(y1)


def regions_mask(size: tuple[int, int], regions: Sequence[MaskRegion]) -> Image.Image:
    """A mode-L mask of `size` with every region painted white."""
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    for region in regions:
        x0, y0, x1, y1 = pixel_box(region, size)
        if x1 > x0 and y1 > y0:  # a box under one pixel paints nothing (and the empty-mask check says so)
            paint = draw.ellipse if region.shape == "ellipse" else draw.rectangle
            paint([x0, y0, x1 - 1, y1 - 1], fill=255)  # PIL boxes include the right/bottom pixel
    return mask


def load_mask_file(path: str | Path, size: tuple[int, int], resize: bool) -> Image.Image:
    """A mask image as greyscale (white = repaint); a size mismatch is refused unless `resize`."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            mask = im.convert("L")
    except (OSError, ValueError) as err:
        raise MaskError(f"mask_file {path}: cannot read it as an image ({err})",
                        fix="give a PNG mask, white = repaint") from None
    if mask.size != size:
        if not resize:
            raise MaskError(
                f"mask_file {path} is {mask.size[0]}x{mask.size[1]} but the image is {size[0]}x{size[1]}",
                fix="use a mask drawn on this image, or set resize_mask: true to stretch it to the image size",
            )
        mask = mask.resize(size, Image.NEAREST)
    return mask


def grow(mask: Image.Image, pixels: int) -> Image.Image:
    """Dilate (pixels > 0) or erode (< 0) the mask with a round kernel: cover a halo, or pull in from edges."""
    if pixels == 0:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(pixels) + 1,) * 2)
    op = cv2.dilate if pixels > 0 else cv2.erode
    return Image.fromarray(op(np.asarray(mask), kernel))


def feather(mask: Image.Image, radius: int) -> Image.Image:
    """Gaussian-blur the mask edge so the pasted result fades into the original over ~`radius` pixels."""
    return mask if radius == 0 else mask.filter(ImageFilter.GaussianBlur(radius / 2))


def build_masks(
    size: tuple[int, int],
    regions: Sequence[MaskRegion],
    mask_file: str | Path | None = None,
    resize_mask: bool = False,
    grow_pixels: int = 0,
    feather_radius: int = 0,
) -> Masks:
    """Union of the regions and the mask file, binarised, grown/shrunk, then feathered; an empty result is refused."""
    hard = regions_mask(size, regions)
    if mask_file:
        hard = Image.fromarray(np.maximum(np.asarray(hard), np.asarray(load_mask_file(mask_file, size, resize_mask))))
    hard = grow(hard.point(lambda v: 255 if v >= 128 else 0), grow_pixels)
    if not np.asarray(hard).any():
        raise MaskError(
            f"the mask is empty (no pixel to repaint) for the {size[0]}x{size[1]} image"
            + (f" after shrinking by {-grow_pixels} px" if grow_pixels < 0 else ""),
            fix="check mask_regions (relative boxes are fractions 0..1) / mask_file (white = repaint), or shrink less",
        )
    return Masks(hard=hard, soft=feather(hard, feather_radius))
