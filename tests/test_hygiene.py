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
