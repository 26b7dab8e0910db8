"""SDXL aspect buckets: the standard ~1 megapixel set, scaled to a base resolution, and the resize+crop
that fits an image into its bucket while recording the crop offsets SDXL's time ids need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

# (width, height) at base 1024: the aspect set SDXL was trained on, about one megapixel each.
SDXL_BUCKETS_1024 = [
    (1024, 1024), (1152, 896), (896, 1152), (1216, 832), (832, 1216),
    (1344, 768), (768, 1344), (1536, 640), (640, 1536),
]
MULTIPLE = 8  # the VAE downsamples by 8, so bucket sides stay multiples of 8


def sdxl_buckets(base: int) -> list[tuple[int, int]]:
    """The bucket set scaled from 1024 to `base`, sides rounded to multiples of 8, duplicates dropped."""
    out: list[tuple[int, int]] = []
    for w, h in SDXL_BUCKETS_1024:
        b = (max(MULTIPLE, round(w * base / 1024 / MULTIPLE) * MULTIPLE), max(MULTIPLE, round(h * base / 1024 / MULTIPLE) * MULTIPLE))
        if b not in out:
            out.append(b)
    return out


@dataclass(frozen=True)
class Fit:
    """How one image fills its bucket: resize to `resized`, then crop `bucket` at (left, top)."""

    bucket: tuple[int, int]
    resized: tuple[int, int]
    left: int
    top: int
    source: tuple[int, int]

    @property
    def upscale(self) -> float:
        """Resize factor (> 1 means the source is enlarged, so it will look soft)."""
        return self.resized[0] / self.source[0]

    @property
    def crop_share(self) -> float:
        """Share of the resized picture cut away by the crop."""
        return 1.0 - (self.bucket[0] * self.bucket[1]) / (self.resized[0] * self.resized[1])


def nearest_bucket(width: int, height: int, buckets: list[tuple[int, int]]) -> tuple[int, int]:
    """The bucket whose aspect ratio is closest to the image's (in log space, so 2:1 and 1:2 are symmetric)."""
    ar = math.log(width / height)
    return min(buckets, key=lambda b: (abs(math.log(b[0] / b[1]) - ar), -b[0] * b[1]))


def fit_bucket(width: int, height: int, buckets: list[tuple[int, int]]) -> Fit:
    """Cover-resize into the nearest bucket and centre-crop the overflow (kept framing, no padding)."""
    bw, bh = nearest_bucket(width, height, buckets)
    scale = max(bw / width, bh / height)
    rw, rh = max(bw, math.ceil(width * scale - 1e-6)), max(bh, math.ceil(height * scale - 1e-6))
    return Fit((bw, bh), (rw, rh), (rw - bw) // 2, (rh - bh) // 2, (width, height))


def apply_fit(image: Image.Image, fit: Fit) -> Image.Image:
    """Resize with Lanczos and crop to exactly the bucket size."""
    resized = image.resize(fit.resized, Image.Resampling.LANCZOS)
    return resized.crop((fit.left, fit.top, fit.left + fit.bucket[0], fit.top + fit.bucket[1]))
