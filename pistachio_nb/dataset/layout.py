"""Write the kept images in the kohya layout plus `metadata.jsonl`, touching only what changed.

An image already written with the same source hash, bucket and crop is left alone (or renamed when it
only changed side of the split); captions and other fields later stages added are carried over, never lost.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..files import read_jsonl, write_bytes, write_text
from .buckets import Fit
from .decode import Limits, decode_upright, open_checked
from .pool import parallel_map

METADATA = "metadata.jsonl"
# metadata fields this stage owns; any other field (text, caption_key...) belongs to a later stage and is
# carried over to the same source image on a rerun
OWN_KEYS = {"file_name", "split", "width", "height", "original_width", "original_height", "crop_left", "crop_top", "source", "hash"}
# How the bucket-sized copies are stored (tests/benchmarks/bench_dataset.py --encoders measures the choices): JPEG
# at quality 95 without chroma subsampling is ~44 dB PSNR from lossless (far below what the VAE loses when it
# encodes the image) at a third of PNG's size; PNG level 1 was 65% of the stage. OpenCV encodes the same bytes
# as Pillow (both libjpeg-turbo, same settings) ~25% faster, and resizes ~3x faster: area averaging to shrink
# (antialiased), bicubic to enlarge, ~51 dB from a Lanczos resize.
IMAGE_SUFFIX = ".jpg"
JPEG_OPTIONS = (cv2.IMWRITE_JPEG_QUALITY, 95, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444)


def kohya_folder(repeats: int, trigger: str, class_word: str) -> str:
    """`<repeats>_<trigger> <class>`: kohya reads the repeat count and the class prompt from this name."""
    return f"{repeats}_{trigger} {class_word}"


def output_name(rel: str, sha256: str) -> str:
    """A stable, unique image name: the source path flattened to a slug, plus 8 hex of its content hash."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", rel.rsplit(".", 1)[0]).strip("_")[:80] or "image"
    return f"{slug}-{sha256[:8]}{IMAGE_SUFFIX}"


def _key(entry: dict) -> tuple:
    """What makes a written file reusable: same source, bucket, crop and storage format."""
    return entry["hash"], entry["width"], entry["height"], entry["crop_left"], entry["crop_top"], Path(entry["file_name"]).suffix


@dataclass(frozen=True)
class RenderJob:
    """One image to decode, fit into its bucket and save."""

    source: str
    dest: str
    fit: Fit
    limits: Limits
    background: tuple[int, int, int]


def fit_array(pixels: np.ndarray, fit: Fit) -> np.ndarray:
    """The bucket-sized picture of an (H, W) or (H, W, C) uint8 array, which may be a reduced-scale decode of
    the source: cover-resized to `fit.resized` (area averaging to shrink, bicubic to enlarge), then cropped."""
    shrink = fit.resized[0] * fit.resized[1] < pixels.shape[0] * pixels.shape[1]
    resized = cv2.resize(pixels, fit.resized, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    return resized[fit.top : fit.top + fit.bucket[1], fit.left : fit.left + fit.bucket[0]]


def fit_image(image: Image.Image, fit: Fit) -> Image.Image:
    """`fit_array` for a grey or RGB picture (masks are cut with the same pixels as the images they weight)."""
    return Image.fromarray(np.ascontiguousarray(fit_array(np.asarray(image), fit)), image.mode)


def jpeg_bytes(rgb: np.ndarray, source: str = "an image") -> bytes:
    """An (H, W, 3) RGB uint8 array as the dataset's JPEG (OpenCV wants BGR); a failure names `source`."""
    ok, encoded = cv2.imencode(IMAGE_SUFFIX, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), JPEG_OPTIONS)
    if not ok:
        raise OSError(f"JPEG encoding failed for {source}")
    return encoded.tobytes()


def render(job: RenderJob) -> str:
    """Decode (reduced-scale when possible), resize + crop to the bucket, encode as JPEG, save atomically."""
    im, _ = open_checked(Path(job.source).read_bytes(), job.limits)
    rgb = fit_array(np.asarray(decode_upright(im, job.fit.resized, job.background)), job.fit)
    write_bytes(job.dest, jpeg_bytes(rgb, job.source))
    return job.dest


def _sidecar(image: Path) -> Path:
    return image.with_suffix(".txt")


def _move(old: Path, new: Path) -> None:
    new.parent.mkdir(parents=True, exist_ok=True)
    os.replace(old, new)
    if _sidecar(old).exists():
        os.replace(_sidecar(old), _sidecar(new))


def sync_layout(root: Path, entries: list[dict], jobs: dict[str, RenderJob], workers: int) -> dict[str, int]:
    """Make `root` hold exactly `entries` (metadata rows) with their images and caption sidecars.

    `jobs` maps file_name -> how to render it when it is not already there. Returns counts of
    written, moved, unchanged and removed images. Only files listed in the old metadata are removed.
    """
    old = {e["file_name"]: e for e in read_jsonl(root / METADATA)}
    old_by_key = {_key(e): name for name, e in old.items() if (root / name).exists()}
    later = {e["hash"]: {k: v for k, v in e.items() if k not in OWN_KEYS} for e in old.values()}
    counts = dict(written=0, moved=0, unchanged=0, removed=0)
    todo = []
    for e in entries:
        e.update(later.get(e["hash"], {}))
        dest = root / e["file_name"]
        if e["file_name"] in old and _key(old[e["file_name"]]) == _key(e) and dest.exists():
            counts["unchanged"] += 1
        elif _key(e) in old_by_key:
            _move(root / old_by_key.pop(_key(e)), dest)
            counts["moved"] += 1
        else:
            todo.append(jobs[e["file_name"]])
    for _ in parallel_map(render, todo, workers, "write", preload=__name__):
        counts["written"] += 1
    keep = {e["file_name"] for e in entries}
    for name in old:
        if name not in keep and (root / name).exists():
            (root / name).unlink()
            _sidecar(root / name).unlink(missing_ok=True)
            counts["removed"] += 1
    for e in entries:
        if not _sidecar(root / e["file_name"]).exists():
            write_text(_sidecar(root / e["file_name"]), e["text"])
    _remove_empty_dirs(root)
    return counts


def _remove_empty_dirs(root: Path) -> None:
    for sub in ("train", "validation"):
        for folder in sorted((root / sub).glob("**/"), key=lambda p: -len(p.parts)):
            if folder.is_dir() and not any(folder.iterdir()) and folder != root / sub:
                folder.rmdir()
