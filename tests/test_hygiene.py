"""Data hygiene: atomic writes get ordinary file modes; 16-bit images are scaled by their real range."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
from PIL import Image

from pistachio_nb.dataset.decode import to_rgb
from pistachio_nb.files import write_bytes


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_get_the_mode_open_would_give(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = write_bytes(tmp_path / "out.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def _grey16(values: np.ndarray) -> Image.Image:
    im = Image.fromarray(values.astype(np.uint16))
    assert im.mode == "I;16"
    return im


def test_16_bit_image_holding_8_bit_values_keeps_them():
    ramp = np.tile(np.arange(256, dtype=np.uint16), (8, 1))
    rgb = np.asarray(to_rgb(_grey16(ramp), (255, 255, 255)))
    assert rgb[..., 0].tolist() == ramp.tolist()  # not divided by 257 into an all-black picture


def test_full_range_16_bit_image_is_scaled_not_clipped():
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (8, 1))
    rgb = np.asarray(to_rgb(_grey16(ramp), (255, 255, 255)))[..., 0]
    assert rgb.min() == 0 and rgb.max() == 255 and np.all(np.diff(rgb[0].astype(int)) >= 0)


def test_dangling_links_loops_and_fifos_get_skipped_rows_and_outside_links_are_flagged(tmp_path):
    import random

    from pistachio_nb.dataset import prepare_dataset
    from pistachio_testkit.demo_data import draw_scene, encode

    from .dataset_helpers import make_params

    src, outside = tmp_path / "src", tmp_path / "elsewhere"
    src.mkdir(), outside.mkdir()
    for i in range(3):
        (src / f"scene_{i}.jpg").write_bytes(encode(draw_scene(random.Random(i), (320, 240)), "JPEG", quality=92))
    (outside / "far.jpg").write_bytes(encode(draw_scene(random.Random(9), (320, 240)), "JPEG", quality=92))
    (src / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    (src / "loop_a.jpg").symlink_to(src / "loop_b.jpg")
    (src / "loop_b.jpg").symlink_to(src / "loop_a.jpg")
    os.mkfifo(src / "pipe.jpg")  # reading it would block the run forever
    (src / "far.jpg").symlink_to(outside / "far.jpg")
    ds = prepare_dataset(make_params(tmp_path / "ws", src, workers=1))
    rows = ds.manifest.set_index("path")
    assert rows.loc["dangling.jpg", "status"] == "skipped" and "broken symlink" in rows.loc["dangling.jpg", "reason"]
    assert {rows.loc[f"loop_{x}.jpg", "status"] for x in "ab"} == {"skipped"}
    assert rows.loc["pipe.jpg", "status"] == "skipped" and "FIFO" in rows.loc["pipe.jpg", "reason"]
    assert rows.loc["far.jpg", "status"] == "ok" and "outside_source" in rows.loc["far.jpg", "flags"]
    assert "outside_source" not in str(rows.loc["scene_0.jpg", "flags"])
    again = prepare_dataset(make_params(tmp_path / "ws", src, workers=1)).manifest.set_index("path")
    assert again["status"].to_dict() == rows["status"].to_dict()  # a rerun (probe cache) says the same


def test_comfy_downloads_get_the_mode_open_would_give(tmp_path):
    from pistachio_nb.comfy.client import ComfyClient, ImageRef
    from pistachio_testkit.comfy_server import ComfyTestServer

    with ComfyTestServer(root=tmp_path / "comfy") as srv:
        (srv.root / "output" / "a.png").write_bytes(b"\x89PNG fake")
        old = os.umask(0o022)
        try:
            with ComfyClient(srv.url, timeout=(3, 5), use_websocket=False) as client:
                path = client.download_to(ImageRef("a.png"), tmp_path / "got")
        finally:
            os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 and path.read_bytes() == b"\x89PNG fake"


def test_a_users_caption_beside_an_image_is_reported_and_starts_its_caption(tmp_path):
    import json
    import random

    from pistachio_nb.captions.store import current_caption
    from pistachio_nb.dataset import prepare_dataset
    from pistachio_testkit.demo_data import draw_scene, encode

    from .dataset_helpers import make_params

    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"scene_{i}.jpg").write_bytes(encode(draw_scene(random.Random(i), (320, 240)), "JPEG", quality=92))
    (src / "scene_1.txt").write_text("pstchio woman on a beach, smiling\n")
    (src / "notes.txt").write_text("not a caption")
    before = (src / "scene_1.txt").stat().st_mtime_ns
    ds = prepare_dataset(make_params(tmp_path / "ws", src, workers=1, validation_ratio=0))
    rows = ds.manifest.set_index("path")
    assert "caption of scene_1.jpg" in rows.loc["scene_1.txt", "reason"]
    assert "not an image extension" in rows.loc["notes.txt", "reason"]
    entries = {e["source"]: e for e in map(json.loads, (ds.root / "metadata.jsonl").read_text().splitlines())}
    assert entries["scene_1.jpg"]["text"] == "pstchio woman on a beach, smiling"
    assert entries["scene_1.jpg"]["caption_source"] == "user" and entries["scene_0.jpg"]["text"] == ""
    assert current_caption(ds.root, entries["scene_1.jpg"]) == "pstchio woman on a beach, smiling"  # 02 keeps it
    assert (src / "scene_1.txt").stat().st_mtime_ns == before  # the user's file is never changed
