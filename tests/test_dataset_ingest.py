"""Ingest: every bad-file kind gets its reason and the run continues; awkward modes become sensible RGB."""

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pistachio_nb.dataset.decode import Limits, RejectedImage, decode_upright, open_checked
from pistachio_nb.dataset.ingest import ProbeConfig, probe_all
from pistachio_testkit.demo_data import draw_scene, encode

LIMITS = Limits(min_side=64, max_pixels=40_000_000)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a huge size in a few bytes (the shape of a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def scene(size=(320, 240), seed=0):
    import random
    return draw_scene(random.Random(seed), size)


BAD_FILES = {
    "text_named.jpg": (b"not an image at all\n", "not an image"),
    "truncated.jpg": (encode(scene(), "JPEG", quality=90)[:3000], "truncated"),
    "truncated.png": (encode(scene(), "PNG")[:5000], "truncated"),
    "small.png": (encode(scene((60, 200)), "PNG"), "too small"),
    "huge_declared.png": (png_header_only(9000, 6000), "too many pixels"),
    "bomb.png": (png_header_only(30000, 30000), "too many pixels"),
    "animated.png": (encode(scene(), "GIF"), "unsupported format GIF"),
    "empty.jpg": (b"", "not an image"),
    "notes.txt": (b"hello", "not an image extension"),
    "IMG_0001.HEIC": (b"\0\0\0\x18ftypheic", "export it as JPEG"),
}


@pytest.fixture
def bad_folder(tmp_path: Path) -> Path:
    for name, (data, _) in BAD_FILES.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "good.jpg").write_bytes(encode(scene(), "JPEG", quality=90))
    return tmp_path


def test_each_bad_kind_gets_its_reason_and_the_run_continues(bad_folder):
    cfg = ProbeConfig(str(bad_folder), LIMITS.min_side, LIMITS.max_pixels, "phash", (255, 255, 255))
    rels = sorted(p.name for p in bad_folder.iterdir())
    rows, probed = probe_all(cfg, rels, {}, workers=1)
    by_path = {r["path"]: r for r in rows}
    assert probed == len(rels)
    for name, (_, reason) in BAD_FILES.items():
        assert by_path[name]["status"] in ("rejected", "skipped"), name
        assert reason in by_path[name]["reason"], (name, by_path[name]["reason"])
    assert by_path["good.jpg"]["status"] == "ok" and len(by_path["good.jpg"]["phash"]) == 16


def _decode(im: Image.Image, fmt: str, background=(255, 255, 255), **kw) -> Image.Image:
    opened, _ = open_checked(encode(im, fmt, **kw), LIMITS)
    return decode_upright(opened, None, background)


def test_sixteen_bit_is_scaled_not_clipped():
    ramp = np.linspace(0, 65535, 128 * 128).reshape(128, 128).astype(np.uint16)
    out = np.asarray(_decode(Image.fromarray(ramp), "PNG"))
    assert out.shape == (128, 128, 3)
    assert out.min() == 0 and out.max() == 255 and 100 < out.mean() < 155


def test_alpha_is_composited_on_the_background_colour():
    im = Image.new("RGBA", (100, 100), (255, 0, 0, 0))
    im.paste((0, 0, 255, 255), (0, 0, 50, 100))
    out = _decode(im, "PNG", background=(0, 255, 0))
    assert out.mode == "RGB"
    assert out.getpixel((10, 50)) == (0, 0, 255) and out.getpixel((90, 50)) == (0, 255, 0)


def test_palette_with_transparency_and_cmyk_become_rgb():
    pal = Image.new("P", (80, 80), 0)
    pal.putpalette([255, 255, 0] + [0, 0, 0] * 255)
    out = _decode(pal, "PNG", transparency=0, background=(10, 20, 30))
    assert out.getpixel((5, 5)) == (10, 20, 30)
    cmyk = _decode(Image.new("RGB", (80, 80), (200, 30, 30)).convert("CMYK"), "JPEG", quality=95)
    r, g, b = cmyk.getpixel((40, 40))
    assert cmyk.mode == "RGB" and r > 150 and g < 80 and b < 80


def test_exif_orientation_is_applied_to_size_and_pixels():
    im = Image.new("RGB", (200, 100), (0, 0, 0))
    im.paste((255, 255, 255), (0, 0, 100, 100))  # white on the left of the upright picture...
    exif = Image.Exif()
    exif[0x0112] = 6  # ...stored rotated: viewers turn it 90 degrees clockwise
    stored = encode(im.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95, exif=exif)
    opened, size = open_checked(stored, LIMITS)
    out = decode_upright(opened, None, (0, 0, 0))
    assert size == out.size == (200, 100)
    assert out.getpixel((20, 50))[0] > 200 and out.getpixel((180, 50))[0] < 50


def test_reduced_scale_decode_is_at_least_the_requested_size():
    opened, (w, h) = open_checked(encode(scene((800, 600)), "JPEG", quality=90), LIMITS)
    out = decode_upright(opened, (200, 150), (0, 0, 0))
    assert (200, 150) <= out.size < (w, h)


def test_open_checked_refuses_before_decoding():
    with pytest.raises(RejectedImage, match="max_pixels"):
        open_checked(png_header_only(9000, 6000), LIMITS)


def test_an_unexpected_decoder_error_is_a_rejection_not_a_crash(bad_folder, monkeypatch):
    import struct as struct_module

    from pistachio_nb.dataset import ingest

    def explode(data, limits):
        raise struct_module.error("unpack requires a buffer of 4 bytes")

    monkeypatch.setattr(ingest, "open_checked", explode)
    cfg = ProbeConfig(str(bad_folder), LIMITS.min_side, LIMITS.max_pixels, "phash", (0, 0, 0))
    row = ingest.probe_file(("good.jpg", cfg))
    assert row["status"] == "rejected" and row["reason"].startswith("unreadable (error: unpack")


def test_multi_picture_jpeg_from_phones_is_accepted(tmp_path):
    first, second = scene((480, 360), seed=1), scene((480, 360), seed=2)
    first.save(tmp_path / "phone.jpg", "MPO", save_all=True, append_images=[second], quality=90)
    cfg = ProbeConfig(str(tmp_path), LIMITS.min_side, LIMITS.max_pixels, "phash", (255, 255, 255))
    row = probe_all(cfg, ["phone.jpg"], {}, workers=1)[0][0]
    assert row["status"] == "ok" and row["format"] == "MPO" and (row["width"], row["height"]) == (480, 360)
