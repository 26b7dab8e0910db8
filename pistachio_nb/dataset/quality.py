"""Quality signals: a blur score (variance of the Laplacian) and the flags a person should look at.

Flags never drop an image; they point at the ones worth a second look before training.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

ANALYSIS_SIDE = 192  # blur is measured at one fixed scale so scores compare across image sizes; at 192 a
# ~1 MP JPEG still decodes at 1/4 scale (about 1.5x faster than 256), and clearly soft photos still score low
HEAVY_CROP = 0.2  # flag when fitting the bucket crops away more than this share of the picture
UPSCALE = 1.1  # flag when filling the bucket enlarges the picture by more than 10% (a few % is invisible)


def analysis_size(width: int, height: int) -> tuple[int, int]:
    """(w, h) with the shorter side scaled to ANALYSIS_SIDE, aspect kept."""
    scale = ANALYSIS_SIDE / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def blur_score(gray: Image.Image) -> float:
    """Variance of the 4-neighbour Laplacian of a grayscale image: low means few sharp edges (blurry)."""
    a = np.asarray(gray, dtype=np.float32)
    lap = -4.0 * a[1:-1, 1:-1] + a[:-2, 1:-1] + a[2:, 1:-1] + a[1:-1, :-2] + a[1:-1, 2:]
    return float(lap.var())


def quality_flags(blur: float, blur_threshold: float, upscale: float, crop_share: float) -> list[str]:
    """Names of the quality problems of one kept image (empty when none)."""
    flags = []
    if blur < blur_threshold:
        flags.append("blurry")
    if upscale > UPSCALE:
        flags.append("upscaled")
    if crop_share > HEAVY_CROP:
        flags.append("heavy_crop")
    return flags
