"""Prior preservation: class (regularization) images, one per training bucket size, mixed into every batch.

The user's own class images (read only) are fitted into the training buckets; any shortfall up to
`num_class_images` is generated with the *base* model before the LoRA exists, and cached, so the
class loss anchors the model to what it drew for the class prompt before training. The class prompt
is one fixed prompt, or (`from_captions`) each training caption with the trigger replaced by the class
word, so the class images cover the same scenes, outfits and framings as the training images and the
prior is kept exactly where the LoRA learns. 04_checkpoints' concept-bleed metric judges the result.
"""

from __future__ import annotations

import hashlib
import math
import re
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


def class_caption(caption: str, trigger: str, class_word: str) -> str:
    """A training caption as a class prompt: the trigger (and a class word right after it) becomes the class word."""
    if not trigger or not class_word:
        raise InputDataError(
            "class_prompt_source 'from_captions' needs the trigger and class word from the dataset folder name",
            fix="name the training folder `<repeats>_<trigger> <class>` (01_dataset does), or use class_prompt_source 'fixed'",
        )
    text = re.sub(rf"\b{re.escape(trigger)}\b(\s+{re.escape(class_word)}\b)?", class_word, caption)
    return " ".join(text.split())


def _per_size(train: list[Example], wanted: int) -> dict[tuple[int, int], tuple[list[Example], int]]:
    """Per training size: its training examples and how many class images it gets (like the training split, at least one)."""
    counts = Counter(ex.size for ex in train)
    return {size: ([ex for ex in train if ex.size == size], math.ceil(wanted * counts[size] / len(train))) for size in sorted(counts)}


def _generate(pipe, jobs: list[tuple[tuple[int, int], Path, int, str]], steps: int) -> None:
    for size, dest, image_seed, prompt in tqdm(jobs, desc="class images", disable=not jobs):
        generator = torch.Generator("cpu").manual_seed(image_seed)
        image = pipe(prompt, width=size[0], height=size[1], num_inference_steps=steps, generator=generator).images[0]
        _save(image, dest)


@torch.no_grad()
def class_examples(pipe, train: list[Example], work: Path, source: Path | None, prompt: str, wanted: int,
                   seed: int, steps: int, from_captions: tuple[str, str] | None = None) -> list[Example]:  # fmt: skip
    """Class examples for every training size (split over the sizes like the training images, at least one per size).

    Fixed prompt: fitted user images plus generated ones to reach `wanted`. `from_captions` = (trigger,
    class word): one generated image per training caption of that size (cycled), the trigger replaced by the
    class word, seed `seed + i`; cached under a hash of prompt, seed and steps, so an edited caption is redrawn.
    """
    plan = _per_size(train, wanted)
    if from_captions is not None:
        return _caption_examples(pipe, plan, work, seed, steps, *from_captions)
    if source is not None:
        _fit_user_images(source, work, sorted(plan))
    jobs = []
    for size, (_, want) in plan.items():
        folder = work / f"{size[0]}x{size[1]}"
        have = len(list(folder.glob("*.png"))) if folder.exists() else 0
        jobs += [(size, folder / f"gen-{i:04d}.png", seed + i, prompt) for i in range(have, want)]
    _generate(pipe, jobs, steps)
    return [
        Example(path=f, key=f"class:{f.parent.name}/{f.name}", caption=prompt, size=size, original=size, crop=(0, 0), repeats=1)
        for size in plan for f in sorted((work / f"{size[0]}x{size[1]}").glob("*.png"))
    ]  # fmt: skip


def _caption_examples(pipe, plan, work: Path, seed: int, steps: int, trigger: str, class_word: str) -> list[Example]:
    """Class images drawn from the training captions (trigger -> class word), each with its prompt as its caption."""
    jobs = []
    for size, (examples, want) in plan.items():
        for i in range(want):
            prompt = class_caption(examples[i % len(examples)].caption, trigger, class_word)
            key = hashlib.sha256(f"{prompt}\n{seed + i}\n{steps}".encode()).hexdigest()[:16]
            jobs.append((size, work / "from_captions" / f"{size[0]}x{size[1]}" / f"{key}.png", seed + i, prompt))
    _generate(pipe, [job for job in jobs if not job[1].exists()], steps)
    return [Example(path=dest, key=f"class:{dest.parent.name}/{dest.name}", caption=prompt, size=size, original=size,
                    crop=(0, 0), repeats=1) for size, dest, _, prompt in jobs]  # fmt: skip


def class_batch(examples: list[Example], size: tuple[int, int], count: int, step: int) -> list[Example]:
    """`count` class examples of `size`, rotating deterministically with the step."""
    pool = [ex for ex in examples if ex.size == size]
    return [pool[(step * count + i) % len(pool)] for i in range(count)] if pool else []
