"""What the 05 notebook shows: mask views, what the model sees, before/after, and pixel-level checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image, ImageChops

from ..display import image_grid
from .masks import Masks
from .paste import Crop, crop_for_model, mask_bbox


def overlay(image: Image.Image, mask: Image.Image, color=(255, 0, 80), opacity: float = 0.5) -> Image.Image:
    """The image with the mask tinted on top: what will be repainted, in context."""
    tint = Image.new("RGB", image.size, color)
    alpha = mask.point(lambda v: round(v * opacity))
    return Image.composite(tint, image.convert("RGB"), alpha)


def mask_views(image: Image.Image, masks: Masks):
    """Figure: image | mask | feathered mask | overlay, the check to make before spending GPU time."""
    row = [image, masks.hard.convert("RGB"), masks.soft.convert("RGB"), overlay(image, masks.soft)]
    return image_grid([row], col_labels=["image", "mask (white = repaint)", "feathered mask", "overlay"], cell_inches=3)


def mask_summary(image: Image.Image, masks: Masks) -> pd.DataFrame:
    """One row of numbers about the mask: size, share of the image repainted, bounding box, feather width."""
    hard, soft = np.asarray(masks.hard) > 0, np.asarray(masks.soft)
    return pd.DataFrame([{
        "image": f"{image.width}x{image.height}", "repaint_share": round(float(hard.mean()), 4),
        "mask_bbox": mask_bbox(masks.hard), "blended_px": int(((soft > 0) & (soft < 255)).sum()),
    }])  # fmt: skip


def model_view(image: Image.Image, masks: Masks, crop: Crop):
    """Figure: the crop and mask exactly as the model receives them (resized to its working size)."""
    row = [crop_for_model(image, crop), crop_for_model(masks.hard, crop, Image.NEAREST).convert("RGB")]
    w, h = crop.work_size
    return image_grid([row], col_labels=[f"model input {w}x{h} (box {crop.box})", "model mask"], cell_inches=3)


def difference(a: Image.Image, b: Image.Image) -> Image.Image:
    """Absolute per-pixel difference, brightened so small changes show."""
    return ImageChops.difference(a.convert("RGB"), b.convert("RGB")).point(lambda v: min(255, v * 4))


def before_after(image: Image.Image, masks: Masks, *results: tuple[str, Image.Image]):
    """Figure: original | overlay | each labelled result | its difference to the original."""
    row = [image, overlay(image, masks.soft)]
    labels = ["before", "mask"]
    for label, result in results:
        row += [result, difference(image, result)]
        labels += [label, f"{label}: changed pixels"]
    return image_grid([row], col_labels=labels, cell_inches=2.6)


def pixels_changed(a: Image.Image, b: Image.Image, outside: Image.Image | None = None) -> int:
    """How many pixels differ between a and b (only where `outside` is 0, if a mask is given)."""
    changed = (np.asarray(a.convert("RGB")) != np.asarray(b.convert("RGB"))).any(axis=2)
    if outside is not None:
        changed &= np.asarray(outside) == 0
    return int(changed.sum())
