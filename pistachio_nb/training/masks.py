"""Loss-weight masks per training image: masked loss, as sd-scripts' `--masked_loss` and OneTrainer's masked training.

A mask says where the loss counts: white (1) is learned at full weight, black (0) at `mask_outside_weight`.
- `file`: `<image stem>-masklabel.png` beside the dataset image (OneTrainer's name; sd-scripts reads a same-named
  file from a `conditioning_data_dir`), any mode read as grayscale, the dataset image's size; an image without one
  trains unmasked. The dataset image is the bucket-cropped copy under `<workspace>/dataset/`, not the original photo.
- `alpha`: the dataset image's alpha channel, else its source photo's alpha cut the way the dataset stage cut the
  photo (that stage stores JPEGs, so the transparency lives in the photo); opaque is learned.
- `face`: the faces 01_dataset found (its `faces.json`), each box grown to cover the head and drawn as an ellipse on
  the source picture, then cut the way the dataset image was cut; an image without a face trains unmasked.
Masks are made at latent resolution (the loss's grid, 1/8 of the image side, area-averaged as sd-scripts does) and
cached beside the latents, keyed by what the mask was made from, so a changed mask file makes a new entry.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from ..dataset.identity import FACES
from ..dataset.layout import METADATA, fit_image
from ..errors import InputDataError
from .data import Example, load_dataset
from .features import DiskCache
from .params import TrainingParams

MASK_SUFFIX = "-masklabel.png"  # OneTrainer's convention: photo.jpg -> photo-masklabel.png
LATENT_FACTOR = 8  # the VAE downsamples by 8: one loss value per 8x8 pixels
HEAD_MARGIN = 0.3  # a face box grown by this share of its size on every side: forehead, hair, chin and ears
FACE_CANVAS = 512  # longest side the face ellipses are drawn at before the dataset's cut (ample for a 1/8 grid)
FIX_FILE = f"save it as a grayscale PNG named <image stem>{MASK_SUFFIX}, at the size of the dataset image beside it"


def mask_file(image: Path) -> Path:
    """Where the user's mask of a dataset image lives."""
    return image.with_name(f"{image.stem}{MASK_SUFFIX}")


@dataclass(frozen=True)
class MaskPlan:
    """Where one example's mask comes from; `fingerprint` names its content in the cache key."""

    kind: str  # file | alpha | alpha_source | face
    path: Path
    fingerprint: str
    boxes: tuple = ()  # face: (x, y, w, h) fractions of the source picture


def _open(path: Path, what: str) -> Image.Image:
    """The image fully decoded; an unreadable file is an error naming it."""
    try:
        with Image.open(path) as im:
            im.load()
            return ImageOps.exif_transpose(im)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        fix = FIX_FILE if what == "mask file" else "rerun 01_dataset, or set masked_loss: 'none'"
        raise InputDataError(f"{what} {path} cannot be read ({e})", fix=fix) from e


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def _file_plan(ex: Example) -> MaskPlan | None:
    path = mask_file(ex.path)
    if not path.is_file():
        return None
    size = _open(path, "mask file").size
    with Image.open(ex.path) as im:
        image_size = im.size
    if size != image_size:
        raise InputDataError(f"mask file {path} is {size[0]}x{size[1]} but its image {ex.path.name} is "
                             f"{image_size[0]}x{image_size[1]}", fix=FIX_FILE)  # fmt: skip
    return MaskPlan("file", path, _sha1(path))


def _alpha_plan(ex: Example) -> MaskPlan | None:
    with Image.open(ex.path) as im:
        if _has_alpha(im):
            return MaskPlan("alpha", ex.path, _sha1(ex.path))
    if ex.source is not None and ex.source.is_file() and ex.fit is not None:
        with Image.open(ex.source) as im:
            if _has_alpha(im):
                return MaskPlan("alpha_source", ex.source, f"{ex.key}|{ex.fit}")
    return None


@lru_cache(maxsize=4)
def _faces(path: Path, mtime_ns: int) -> dict:
    return json.loads(path.read_text())


def _face_plan(ex: Example) -> MaskPlan | None:
    root = next((d for d in ex.path.parents if (d / METADATA).is_file()), None)
    if root is None or ex.fit is None or not (root / FACES).is_file():
        return None
    boxes = _faces(root / FACES, (root / FACES).stat().st_mtime_ns).get(ex.path.relative_to(root).as_posix(), {}).get("boxes")
    if not boxes:
        return None
    return MaskPlan("face", root / FACES, hashlib.sha1(json.dumps([boxes, str(ex.fit)]).encode()).hexdigest(), tuple(map(tuple, boxes)))


def face_mask(boxes: tuple, fit) -> Image.Image:
    """White ellipses over the heads (face boxes grown by HEAD_MARGIN) on the source picture, cut like the dataset image."""
    scale = FACE_CANVAS / max(fit.source)
    w, h = max(1, round(fit.source[0] * scale)), max(1, round(fit.source[1] * scale))
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    for x, y, bw, bh in boxes:
        draw.ellipse(((x - HEAD_MARGIN * bw) * w, (y - HEAD_MARGIN * bh) * h, (x + (1 + HEAD_MARGIN) * bw) * w,
                      (y + (1 + HEAD_MARGIN) * bh) * h), fill=255)  # fmt: skip
    return fit_image(canvas, fit)


PLANNERS = {"file": _file_plan, "alpha": _alpha_plan, "face": _face_plan}


def _latent_grid(mask: Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """A grayscale mask as a (1, h/8, w/8) tensor in [0, 1]: each cell the mean of the pixels it covers."""
    cells = mask.resize((size[0] // LATENT_FACTOR, size[1] // LATENT_FACTOR), Image.Resampling.BOX)
    return torch.from_numpy(np.asarray(cells, dtype=np.float32) / 255.0)[None]


def render_mask(plan: MaskPlan, ex: Example) -> torch.Tensor:
    """The example's mask at latent resolution (the loss's grid)."""
    if plan.kind == "face":
        return _latent_grid(face_mask(plan.boxes, ex.fit), ex.size)
    im = _open(plan.path, "mask file" if plan.kind == "file" else "image")
    if plan.kind == "file":
        return _latent_grid(im.convert("L"), ex.size)
    alpha = im.convert("RGBA").getchannel("A")
    return _latent_grid(fit_image(alpha, ex.fit) if plan.kind == "alpha_source" else alpha, ex.size)


class MaskWeights:
    """Per-example loss weights at latent resolution, `outside + (1 - outside) * mask`, through a disk cache."""

    def __init__(self, source: str, outside: float, examples: list[Example], cache_dir: Path) -> None:
        self.source, self.outside = source, outside
        self.plans = {ex.path: plan for ex in examples if (plan := PLANNERS[source](ex))}
        self.cache = DiskCache(cache_dir / "masks", f"masks|{source}")

    def masks(self, examples: list[Example]) -> list[torch.Tensor | None]:
        """Each example's mask (None: it has none), computed once per content and size, then read from the cache."""
        known = [ex for ex in examples if ex.path in self.plans]
        keys = [(ex.key, ex.size, self.plans[ex.path].kind, self.plans[ex.path].fingerprint) for ex in known]
        by_key = dict(zip(keys, known))

        def compute(missing: list[tuple]) -> list[dict[str, torch.Tensor]]:
            return [{"mask": render_mask(self.plans[by_key[k].path], by_key[k])} for k in missing]

        found = {ex.path: e["mask"] for ex, e in zip(known, self.cache.get_many(keys, compute))}
        return [found.get(ex.path) for ex in examples]

    def weights(self, examples: list[Example]) -> torch.Tensor | None:
        """(B, 1, h, w) loss weights of a same-size batch; None when no example in it has a mask."""
        masks = self.masks(examples)
        if all(m is None for m in masks):
            return None
        grid = (1, examples[0].size[1] // LATENT_FACTOR, examples[0].size[0] // LATENT_FACTOR)
        return torch.stack([self.outside + (1 - self.outside) * m if m is not None else torch.ones(grid) for m in masks])


def build_masks(source: str, outside: float, examples: list[Example], cache_dir: Path) -> MaskWeights:
    """Plan, make (or reuse) and check every example's mask before any weights load; refuse what would fail later."""
    weights = MaskWeights(source, outside, examples, cache_dir)
    if not weights.plans:
        where = {"file": f"no {MASK_SUFFIX} file beside any image, e.g. {mask_file(examples[0].path)}",
                 "alpha": "no dataset image and no source photo has an alpha channel",
                 "face": f"01_dataset's {FACES} names no face in any training image"}[source]  # fmt: skip
        raise InputDataError(f"masked_loss {source!r} but {where}",
                             fix="add masks, pick another masked_loss source, or set masked_loss: 'none'")  # fmt: skip
    for ex, mask in zip(examples, weights.masks(examples)):
        if mask is not None and outside == 0 and mask.max() == 0:
            raise InputDataError(f"the {source} mask of {ex.path} is empty (all black) and mask_outside_weight is 0: "
                                 "this image would teach nothing", fix="fix that mask, or raise mask_outside_weight")  # fmt: skip
    return weights


def mask_summary(p: TrainingParams) -> pd.DataFrame:
    """One row per training image: where its mask comes from, the share of it the mask covers, and the share of
    the image's loss weight that falls inside (what the face, or the cut-out subject, gets of each step)."""
    if p.masked_loss == "none":
        return pd.DataFrame({"value": ["none: every pixel weighs the same"]}, index=["masked_loss"])
    data = load_dataset(p.ws.dataset, p.resolution)
    weights = build_masks(p.masked_loss, p.mask_outside_weight, data.train, p.ws.lora / "cache")
    rows = []
    for ex, mask in zip(data.train, weights.masks(data.train)):
        plan = weights.plans.get(ex.path)
        w = p.mask_outside_weight + (1 - p.mask_outside_weight) * mask if mask is not None else None
        rows.append({"image": ex.path.name, "mask from": f"{plan.kind}: {plan.path.name}" if plan else "none (unmasked)",
                     "mask covers %": round(100 * float(mask.mean()), 1) if mask is not None else None,
                     "loss weight inside %": round(100 * float((w * mask).mean() / w.mean()), 1) if w is not None else None})  # fmt: skip
    return pd.DataFrame(rows)
