"""SDXL aspect buckets: the paper's multi-aspect grid (sides multiples of 64, about one megapixel), scaled to a
base resolution, and the resize+crop that fits an image into its bucket while recording the crop offsets
SDXL's time ids need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

# (height, width) of every bucket SDXL's multi-aspect fine-tuning used, as listed in the SDXL paper
# (Podell et al. 2023, arXiv:2307.01952, sec. 2.3 and appendix I): sides in multiples of 64, pixel count as
# close to 1024^2 as the grid allows, aspect ratios from 1:4 to 4:1. The often-quoted nine (1024x1024,
# 1152x896, ...) are a subset: popular inference sizes, not the training set.
SDXL_PAPER_BUCKETS_HW = [
    (512, 2048), (512, 1984), (512, 1920), (512, 1856), (576, 1792), (576, 1728), (576, 1664), (640, 1600),
    (640, 1536), (704, 1472), (704, 1408), (704, 1344), (768, 1344), (768, 1280), (832, 1216), (832, 1152),
    (896, 1152), (896, 1088), (960, 1088), (960, 1024), (1024, 1024), (1024, 960), (1088, 960), (1088, 896),
    (1152, 896), (1152, 832), (1216, 832), (1280, 768), (1344, 768), (1344, 704), (1408, 704), (1472, 704),
    (1536, 640), (1600, 640), (1664, 576), (1728, 576), (1792, 576), (1856, 512), (1920, 512), (1984, 512),
    (2048, 512),
]
SDXL_BUCKETS_1024 = [(w, h) for h, w in SDXL_PAPER_BUCKETS_HW]  # (width, height), as PIL sizes are
GRID_1024 = 64  # the paper's step at base 1024; a smaller base scales it (base 128 -> 8)
MIN_STEP = 8  # never below the VAE's downsampling factor


def bucket_step(base: int) -> int:
    """The grid step at `base`: 64 scaled by base/1024, at least 8 (the VAE's factor)."""
    return max(MIN_STEP, round(GRID_1024 * base / 1024 / MIN_STEP) * MIN_STEP)


def sdxl_buckets(base: int) -> list[tuple[int, int]]:
    """The paper's grid scaled from 1024 to `base`, sides rounded to multiples of the scaled step, duplicates dropped."""
    step = bucket_step(base)
    out: list[tuple[int, int]] = []
    for w, h in SDXL_BUCKETS_1024:
        b = (max(step, round(w * base / 1024 / step) * step), max(step, round(h * base / 1024 / step) * step))
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


def face_fit(fit: Fit, box: tuple[float, float, float, float]) -> Fit:
    """The same resize with the crop moved to centre the face (box as fractions of the picture), within bounds."""
    (rw, rh), (bw, bh) = fit.resized, fit.bucket
    cx, cy = (box[0] + box[2] / 2) * rw, (box[1] + box[3] / 2) * rh
    left, top = (min(max(0, round(c - b / 2)), r - b) for c, b, r in ((cx, bw, rw), (cy, bh, rh)))
    return Fit(fit.bucket, fit.resized, left, top, fit.source)


def apply_fit(image: Image.Image, fit: Fit) -> Image.Image:
    """Resize with Lanczos and crop to exactly the bucket size."""
    resized = image.resize(fit.resized, Image.Resampling.LANCZOS)
    return resized.crop((fit.left, fit.top, fit.left + fit.bucket[0], fit.top + fit.bucket[1]))
