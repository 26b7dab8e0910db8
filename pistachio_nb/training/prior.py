"""Prior preservation: class (regularization) images, one per training bucket size, mixed into every batch.

The user's own class images (read only) are fitted into the training buckets; any shortfall up to
`num_class_images` is generated with the *base* model before the LoRA exists, and cached, so the
class loss anchors the model to what it drew for the class prompt before training.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

from ..dataset.buckets import apply_fit, fit_bucket
from ..errors import InputDataError
from ..files import atomic_path
from .data import Example

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}


def _save(image: Image.Image, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        image.save(tmp, format="PNG")


def _fit_user_images(source: Path, work: Path, sizes: list[tuple[int, int]]) -> None:
    """Copy each user class image, fitted to its nearest training bucket, into `work/<w>x<h>/`."""
    if not source.is_dir():
        raise InputDataError(f"class_images_dir {source} is not a folder", fix="fix the path or set it to ''")
    for path in sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        with Image.open(path) as im:
            fit = fit_bucket(*im.size, sizes)
            dest = work / f"{fit.bucket[0]}x{fit.bucket[1]}" / f"user-{path.stem}.png"
            if not dest.exists():
                _save(apply_fit(im.convert("RGB"), fit), dest)


@torch.no_grad()
def class_examples(pipe, train: list[Example], work: Path, source: Path | None, prompt: str, wanted: int,
                   seed: int, steps: int) -> list[Example]:  # fmt: skip
    """Class examples for every training size: fitted user images plus generated ones to reach `wanted`
    (split over the sizes like the training images, at least one per size)."""
    counts = Counter(ex.size for ex in train)
    sizes = sorted(counts)
    if source is not None:
        _fit_user_images(source, work, sizes)
    jobs = []
    for size in sizes:
        folder = work / f"{size[0]}x{size[1]}"
        have = len(list(folder.glob("*.png"))) if folder.exists() else 0
        want = math.ceil(wanted * counts[size] / len(train))
        jobs += [(size, folder / f"gen-{i:04d}.png", seed + i) for i in range(have, want)]
    for size, dest, image_seed in tqdm(jobs, desc="class images", disable=not jobs):
        generator = torch.Generator("cpu").manual_seed(image_seed)
        image = pipe(prompt, width=size[0], height=size[1], num_inference_steps=steps, generator=generator).images[0]
        _save(image, dest)
    return [
        Example(path=f, key=f"class:{f.parent.name}/{f.name}", caption=prompt, size=size, original=size, crop=(0, 0), repeats=1)
        for size in sizes for f in sorted((work / f"{size[0]}x{size[1]}").glob("*.png"))
    ]  # fmt: skip


def class_batch(examples: list[Example], size: tuple[int, int], count: int, step: int) -> list[Example]:
    """`count` class examples of `size`, rotating deterministically with the step."""
    pool = [ex for ex in examples if ex.size == size]
    return [pool[(step * count + i) % len(pool)] for i in range(count)] if pool else []
