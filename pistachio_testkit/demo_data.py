"""A small, varied, deterministic source folder for the demo and tests: one drawn character in many scenes.

Different sizes and aspect ratios, near-duplicates (resized, re-encoded, brightened copies), the awkward
modes real folders contain (alpha, palette, CMYK, 16-bit, EXIF-rotated) and a few unusable files, so every
later stage has something real to chew on. Structured drawings, not noise, so hashes and blur mean something.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from pistachio_nb.errors import InputDataError
from pistachio_nb.files import write_bytes

SIZES = [(512, 512), (480, 360), (360, 480), (512, 288), (288, 512), (448, 336), (336, 448), (400, 400), (528, 224)]
HAIR, SHIRT, SKIN, TROUSERS = (196, 98, 40), (30, 140, 140), (236, 196, 164), (50, 60, 110)


def draw_scene(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    """A gradient sky, ground, a few shapes and the character (same colours every time) in a random pose."""
    w, h = size
    top, bottom = (np.array([rng.randrange(256) for _ in range(3)], dtype=np.float32) for _ in range(2))
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    sky = np.broadcast_to(top * (1 - t) + bottom * t, (h, w, 3))
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0, 6, (h, w, 3))
    im = Image.fromarray(np.clip(sky + noise, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    horizon = int(h * rng.uniform(0.55, 0.8))
    d.rectangle([0, horizon, w, h], fill=tuple(rng.randrange(40, 160) for _ in range(3)))
    for _ in range(rng.randrange(2, 6)):
        x, y, r = rng.randrange(w), rng.randrange(horizon), rng.randrange(8, max(9, w // 6))
        shape = d.ellipse if rng.random() < 0.5 else d.rectangle
        shape([x - r, y - r, x + r, y + r], fill=tuple(rng.randrange(256) for _ in range(3)))
    draw_character(d, rng, cx=rng.uniform(0.3, 0.7) * w, feet=horizon + rng.uniform(0.05, 0.15) * h, height=h * rng.uniform(0.45, 0.7))
    return im


def draw_character(d: ImageDraw.ImageDraw, rng: random.Random, cx: float, feet: float, height: float) -> None:
    """The recurring character: orange hair, teal shirt, navy trousers; arm angles vary by pose."""
    u = height / 8  # a figure is about eight heads tall
    head_y = feet - 7.5 * u
    d.rectangle([cx - 1.1 * u, head_y + u, cx + 1.1 * u, head_y + 4 * u], fill=SHIRT)
    d.rectangle([cx - 1.0 * u, head_y + 4 * u, cx + 1.0 * u, feet], fill=TROUSERS)
    d.line([cx, head_y + 4.2 * u, cx, feet], fill=(20, 20, 40), width=max(1, int(u / 6)))
    for side in (-1, 1):
        angle = rng.uniform(-0.6, 1.6)
        sx, sy = cx + side * 1.1 * u, head_y + 1.3 * u
        ex, ey = sx + side * 2.6 * u * np.cos(angle), sy + 2.6 * u * np.sin(angle)
        d.line([sx, sy, ex, ey], fill=SHIRT, width=max(2, int(u * 0.5)))
        d.ellipse([ex - u * 0.3, ey - u * 0.3, ex + u * 0.3, ey + u * 0.3], fill=SKIN)
    d.ellipse([cx - u * 0.8, head_y - u, cx + u * 0.8, head_y + u], fill=SKIN)
    d.chord([cx - u * 0.9, head_y - 1.15 * u, cx + u * 0.9, head_y + 0.6 * u], 180, 360, fill=HAIR)
    for side in (-1, 1):
        d.ellipse([cx + side * 0.35 * u - u * 0.1, head_y - u * 0.1, cx + side * 0.35 * u + u * 0.1, head_y + u * 0.1], fill=(20, 20, 20))
    d.arc([cx - 0.4 * u, head_y, cx + 0.4 * u, head_y + 0.6 * u], 20, 160, fill=(120, 40, 40), width=max(1, int(u / 8)))


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _special_files(rng: random.Random) -> dict[str, bytes]:
    """Valid images in the awkward modes real folders contain, each a distinct scene."""
    alpha = draw_scene(rng, (400, 400)).convert("RGBA")
    alpha.putalpha(Image.new("L", alpha.size, 255).transform(alpha.size, Image.Transform.AFFINE, (1, 0.3, -60, 0, 1, 0)))
    rotated = draw_scene(rng, (480, 360))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways; viewers (and we) rotate it upright
    sixteen = np.asarray(draw_scene(rng, (384, 384)).convert("L"), dtype=np.uint16) * 257
    return {
        "formats/cutout_alpha.png": encode(alpha, "PNG"),
        "formats/palette.png": encode(draw_scene(rng, (448, 336)).quantize(64), "PNG"),
        "formats/print_cmyk.jpg": encode(draw_scene(rng, (360, 480)).convert("CMYK"), "JPEG", quality=92),
        "formats/scan_16bit.png": encode(Image.fromarray(sixteen), "PNG"),
        "formats/phone_rotated.jpg": encode(rotated.rotate(90, expand=True), "JPEG", quality=92, exif=exif),
        "formats/sunset.webp": encode(draw_scene(rng, (512, 384)), "WEBP", quality=90),
    }


def demo_files(seed: int = 0, n_scenes: int = 12) -> dict[str, bytes]:
    """Relative path -> file bytes of the whole demo folder (deterministic for a seed)."""
    rng = random.Random(seed)
    scenes = [draw_scene(rng, SIZES[i % len(SIZES)]) for i in range(n_scenes)]
    files = {f"{'session2/' if i % 3 == 2 else ''}scene_{i:02d}.{'png' if i % 4 == 3 else 'jpg'}": encode(s, "PNG" if i % 4 == 3 else "JPEG", quality=92) for i, s in enumerate(scenes)}
    first, third = scenes[0], scenes[3]
    files["copies/scene_00_resized.jpg"] = encode(first.resize((first.width * 3 // 5, first.height * 3 // 5), Image.Resampling.LANCZOS), "JPEG", quality=90)
    files["copies/scene_00_reencoded.jpg"] = encode(first, "JPEG", quality=45)
    files["copies/scene_00_brighter.png"] = encode(ImageEnhance.Brightness(first).enhance(1.08), "PNG")
    files["copies/scene_03_small.webp"] = encode(third.resize((third.width // 2, third.height // 2)), "WEBP", quality=85)
    files["scene_blurry.jpg"] = encode(draw_scene(rng, (448, 336)).filter(ImageFilter.GaussianBlur(4)), "JPEG", quality=92)
    files.update(_special_files(rng))
    whole = encode(draw_scene(rng, (400, 300)), "JPEG", quality=92)
    files["broken/truncated.jpg"] = whole[: len(whole) // 2]
    files["broken/notes_not_an_image.jpg"] = b"shopping list: pistachios, coffee\n"
    files["broken/tiny_icon.png"] = encode(draw_scene(rng, (64, 48)), "PNG")
    files["readme.txt"] = b"demo source folder written by pistachio_testkit.demo_data\n"
    return files


def make_demo_images(dest: str | Path, seed: int = 0) -> list[Path]:
    """Write the demo folder to `dest` (which must not exist or be empty); returns the written paths.

    Files go to a temp folder renamed into place at the end, so two runs starting at once (two demo
    runs in one checkout) never see a half-written folder: the second keeps the first one's copy.
    """
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise InputDataError(f"demo data destination {dest} is not empty", fix="choose a new folder; existing files are never overwritten")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for rel, data in demo_files(seed).items():
            write_bytes(tmp / rel, data)
        os.replace(tmp, dest)
    except OSError:
        if not (dest.is_dir() and any(dest.iterdir())):  # not the lost race: a real error
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sorted(p for p in dest.rglob("*") if p.is_file())
