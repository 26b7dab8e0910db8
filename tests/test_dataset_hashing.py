"""Hashing: pHash equals imagehash's on the same pixels, and a file's hash from the reduced-scale decode lands
within 2 bits of plain imagehash on the full file, for real photos and generated scenes and their copies."""

import random
from pathlib import Path

import imagehash
import matplotlib.cbook
import numpy as np
import pytest
from PIL import Image, ImageEnhance

from pistachio_nb.dataset.dedup import mark_duplicates
from pistachio_nb.dataset.hashing import perceptual_hash
from pistachio_nb.dataset.ingest import ProbeConfig, probe_all
from pistachio_testkit.demo_data import draw_scene

IMAGEHASH = {"phash": imagehash.phash, "dhash": imagehash.dhash, "ahash": imagehash.average_hash, "whash": imagehash.whash}


def real_photos() -> dict[str, Image.Image]:
    """The real pictures matplotlib ships: a photo, a rendered product shot, and a terrain elevation map."""
    dem = matplotlib.cbook.get_sample_data("jacksboro_fault_dem.npz")["elevation"].astype(np.float64)
    terrain = Image.fromarray(((dem - dem.min()) / np.ptp(dem) * 255).astype(np.uint8)).convert("RGB")
    return {
        "grace_hopper": Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"),
        "minduka": Image.open(matplotlib.cbook.get_sample_data("Minduka_Present_Blue_Pack.png")).convert("RGB"),
        "terrain": terrain.resize((terrain.width * 2, terrain.height * 2), Image.Resampling.BICUBIC),
    }


def write_copies(folder: Path, stem: str, im: Image.Image) -> list[str]:
    """The original plus resized, re-encoded, brightened and PNG/WebP copies; returns the copies' names."""
    w, h = im.size
    im.save(folder / f"{stem}.jpg", quality=92)
    copies = {
        f"{stem}_r71.jpg": (im.resize((round(w * 0.714), round(h * 0.714)), Image.Resampling.BILINEAR), dict(quality=85)),
        f"{stem}_r50.jpg": (im.resize((w // 2, h // 2), Image.Resampling.LANCZOS), dict(quality=85)),
        f"{stem}_q60.jpg": (im, dict(quality=60)),
        f"{stem}_bright.jpg": (ImageEnhance.Brightness(im).enhance(1.08), dict(quality=90)),
        f"{stem}.png": (im, {}),
        f"{stem}.webp": (im, dict(quality=80)),
    }
    for name, (copy, kw) in copies.items():
        copy.save(folder / name, **kw)
    return list(copies)


def test_hashes_equal_imagehash_on_the_same_pixels():
    rng = np.random.default_rng(0)
    images = [draw_scene(random.Random(s), (160 + 37 * s, 200)).convert("L") for s in range(20)]
    images += [Image.fromarray(rng.integers(0, 256, (48, 64), dtype=np.uint8)) for _ in range(20)]
    for im in images:
        for name, fn in IMAGEHASH.items():
            assert perceptual_hash(im, name) == str(fn(im)), name


@pytest.fixture(scope="module")
def copies_folder(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """Real photos and generated scenes (1105x904, the size of a copy once 12 bits off) with their copies;
    maps each copy to its original."""
    folder = tmp_path_factory.mktemp("copies")
    sources = real_photos() | {f"scene{s}": draw_scene(random.Random(s), (1105, 904)) for s in range(4)}
    originals = {}
    for stem, im in sources.items():
        originals |= {name: f"{stem}.jpg" for name in write_copies(folder, stem, im)}
    return folder, originals


def test_every_file_hashes_within_two_bits_of_plain_imagehash(copies_folder):
    folder, _ = copies_folder
    cfg = ProbeConfig(str(folder), 64, 60_000_000, "phash", (255, 255, 255))
    rows, _ = probe_all(cfg, sorted(f.name for f in folder.iterdir()), {}, workers=1)
    for r in rows:
        with Image.open(folder / r["path"]) as im:
            plain = int(str(imagehash.phash(im)), 16)
        assert (int(r["phash"], 16) ^ plain).bit_count() <= 2, r["path"]


def test_every_copy_is_found_and_only_copies(copies_folder):
    folder, originals = copies_folder
    cfg = ProbeConfig(str(folder), 64, 60_000_000, "phash", (255, 255, 255))
    rows, _ = probe_all(cfg, sorted(f.name for f in folder.iterdir()), {}, workers=1)
    mark_duplicates(rows, 10)
    cluster = {r["path"]: r["cluster"] for r in rows}
    for copy, original in originals.items():
        assert cluster[copy] == cluster[original], copy
    assert len(set(cluster.values())) == len(set(originals.values()))
