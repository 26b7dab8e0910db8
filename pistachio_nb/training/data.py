"""The training set as the dataset stage wrote it: `metadata.jsonl` rows -> examples -> aspect-bucketed batches.

Each example keeps what SDXL's micro-conditioning needs (original size, crop offsets, target size),
scaled when training runs at another resolution than the dataset was bucketed at (e.g. a quick
512 px trial on a 1024 px dataset).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..dataset.buckets import Fit, fit_bucket
from ..errors import InputDataError
from ..files import read_json, read_jsonl
from ..paths import resolve

METADATA = "metadata.jsonl"
KOHYA_FOLDER = re.compile(r"^(\d+)_(\S+)(?: (.*))?$")  # <repeats>_<trigger> <class>
SIDE_MULTIPLE = 8  # the VAE downsamples by 8


@dataclass(frozen=True)
class Example:
    """One image of the dataset at training size, with its caption and SDXL conditioning."""

    path: Path
    key: str  # content hash of the source image, names its cache entries
    caption: str
    size: tuple[int, int]  # (width, height) the image is trained at (its bucket, maybe rescaled)
    original: tuple[int, int]  # (width, height) of the source image
    crop: tuple[int, int]  # (left, top) of the crop, in training-size pixels
    repeats: int
    source: Path | None = None  # the user's photo the dataset image was cut from, when the dataset says
    fit: Fit | None = None  # how the dataset image was cut from `source` (resize, then crop), in its own pixels

    def time_ids(self) -> list[int]:
        """SDXL's six size/crop conditioning numbers: original (h, w), crop (top, left), target (h, w)."""
        return [self.original[1], self.original[0], self.crop[1], self.crop[0], self.size[1], self.size[0]]


@dataclass(frozen=True)
class DatasetInfo:
    """What training learned about the dataset folder."""

    train: list[Example]
    validation: list[Example]
    trigger: str
    class_word: str
    base_resolution: int
    uncaptioned: int  # examples that fell back to the folder's "<trigger> <class>" prompt


def _side(value: float) -> int:
    return max(SIDE_MULTIPLE, int(round(value / SIDE_MULTIPLE)) * SIDE_MULTIPLE)


def _dataset_params(root: Path) -> dict:
    """The params the dataset stage wrote beside `metadata.jsonl` ({} for a dataset made elsewhere)."""
    sidecar = root / f"{METADATA}.params.json"
    return read_json(sidecar).get("params", {}) if sidecar.exists() else {}


def dataset_base_resolution(root: Path, rows: list[dict]) -> int:
    """The bucket base the dataset was built at: from its params sidecar, else from the bucket areas."""
    if base := _dataset_params(root).get("base_resolution"):
        return int(base)
    areas = sorted(r["width"] * r["height"] for r in rows)
    return _side(areas[len(areas) // 2] ** 0.5)


def _folder_prompt(file_name: str) -> tuple[int, str, str]:
    """(repeats, trigger, class) from a `train/<repeats>_<trigger> <class>/` path; (1, '', '') elsewhere."""
    parts = Path(file_name).parts
    match = KOHYA_FOLDER.match(parts[-2]) if len(parts) >= 2 else None
    if not match:
        return 1, "", ""
    return int(match.group(1)), match.group(2), (match.group(3) or "").strip()


def source_fit(row: dict) -> Fit:
    """How the dataset stage cut this row's image from its source: cover-resize into the bucket, crop at the offsets."""
    bucket, original = (row["width"], row["height"]), (int(row.get("original_width", row["width"])),
                                                        int(row.get("original_height", row["height"])))  # fmt: skip
    resized = fit_bucket(*original, [bucket]).resized
    return Fit(bucket, resized, int(row.get("crop_left", 0)), int(row.get("crop_top", 0)), original)


def _example(root: Path, row: dict, scale: float, source_dir: Path | None) -> tuple[Example, bool]:
    repeats, trigger, class_word = _folder_prompt(row["file_name"])
    caption = (row.get("text") or "").strip()
    fallback = " ".join(x for x in (trigger, class_word) if x)
    size = (_side(row["width"] * scale), _side(row["height"] * scale))
    sx, sy = size[0] / row["width"], size[1] / row["height"]
    example = Example(
        path=root / row["file_name"], key=str(row.get("hash") or row["file_name"]), caption=caption or fallback,
        size=size, original=(int(row.get("original_width", row["width"])), int(row.get("original_height", row["height"]))),
        crop=(int(round(row.get("crop_left", 0) * sx)), int(round(row.get("crop_top", 0) * sy))),
        repeats=repeats if row.get("split", "train") == "train" else 1,
        source=source_dir / row["source"] if source_dir and row.get("source") else None, fit=source_fit(row),
    )  # fmt: skip
    return example, not caption


def load_dataset(root: str | Path, resolution: int) -> DatasetInfo:
    """Read `<root>/metadata.jsonl`; refuse a missing/empty dataset or missing image files before training."""
    root = Path(root)
    rows = read_jsonl(root / METADATA)
    if not rows:
        raise InputDataError(
            f"no dataset at {root / METADATA} (missing or empty)",
            fix="run 01_dataset (and 02_captioning) for this workspace first",
        )
    missing = [r["file_name"] for r in rows if not (root / r["file_name"]).is_file()]
    if missing:
        raise InputDataError(
            f"{len(missing)} image(s) listed in {root / METADATA} are missing, e.g. {missing[0]}",
            fix="rerun 01_dataset so metadata.jsonl and the image folders agree",
        )
    base = dataset_base_resolution(root, rows)
    source_dir = resolve(s) if (s := _dataset_params(root).get("source_dir")) else None
    built = [(_example(root, r, resolution / base, source_dir), r.get("split", "train")) for r in rows]
    train = [ex for (ex, _), split in built if split == "train"]
    if not train:
        raise InputDataError(f"{root / METADATA} has no rows with split 'train'", fix="rerun 01_dataset")
    trigger, class_word = next(((t, c) for _, t, c in map(_folder_prompt, (r["file_name"] for r in rows)) if t), ("", ""))
    return DatasetInfo(
        train=train, validation=[ex for (ex, _), split in built if split == "validation"], trigger=trigger,
        class_word=class_word, base_resolution=base, uncaptioned=sum(un for (_, un), _ in built),
    )  # fmt: skip


def load_pixels(example: Example) -> torch.Tensor:
    """The image as a (3, H, W) float tensor in [-1, 1] at the example's training size."""
    with Image.open(example.path) as im:
        im = im.convert("RGB")
        if im.size != example.size:
            im = im.resize(example.size, Image.Resampling.LANCZOS)
        array = np.asarray(im, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def epoch_batches(examples: list[Example], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Batches of example indices for one epoch: repeats expanded, one size per batch, seeded order."""
    rng = random.Random(f"{seed}-{epoch}")
    by_size: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        by_size[ex.size].extend([i] * ex.repeats)
    batches = []
    for size in sorted(by_size):
        items = by_size[size]
        rng.shuffle(items)
        batches.extend(items[j : j + batch_size] for j in range(0, len(items), batch_size))
    rng.shuffle(batches)
    return batches


def tag_frequency(examples: list[Example]) -> dict[str, dict[str, int]]:
    """kohya's `ss_tag_frequency`: per dataset folder, how often each comma-separated tag occurs."""
    freq: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for ex in examples:
        for tag in filter(None, (t.strip() for t in ex.caption.split(","))):
            freq[ex.path.parent.name][tag] += 1
    return {folder: dict(tags) for folder, tags in freq.items()}


def fingerprint(examples: list[Example]) -> str:
    """What the model trains on (images, captions, sizes, repeats), as one hash: a resume must see the same."""
    rows = sorted((ex.key, ex.caption, ex.size, ex.repeats) for ex in examples)
    return hashlib.sha1(json.dumps(rows).encode()).hexdigest()[:16]
