"""SDXL buckets: the paper's grid at 1024, scaled grids, nearest-aspect choice, exact fit with centred crop, and the
written bucket image."""

import numpy as np
import pytest
from PIL import Image

from pistachio_nb.dataset.buckets import (SDXL_BUCKETS_1024, apply_fit, bucket_step, fit_bucket, nearest_bucket,
                                          sdxl_buckets)
from pistachio_nb.dataset.decode import Limits
from pistachio_nb.dataset.layout import RenderJob, render


def test_paper_grid_multiples_of_64_near_one_megapixel():
    assert sdxl_buckets(1024) == SDXL_BUCKETS_1024 and len(SDXL_BUCKETS_1024) == 41
    assert all(w % 64 == 0 and h % 64 == 0 for w, h in SDXL_BUCKETS_1024)
    assert all(0.9 < w * h / 1024**2 <= 1.0 for w, h in SDXL_BUCKETS_1024)  # never above 1024^2 (paper, app. I)
    assert {(w, h) for w, h in SDXL_BUCKETS_1024} == {(h, w) for w, h in SDXL_BUCKETS_1024}  # portrait = landscape
    assert min(w / h for w, h in SDXL_BUCKETS_1024) == 0.25 and max(w / h for w, h in SDXL_BUCKETS_1024) == 4.0
    for nine in [(1024, 1024), (1152, 896), (896, 1152), (1216, 832), (832, 1216), (1344, 768), (768, 1344),
                 (1536, 640), (640, 1536)]:  # the popular inference sizes are part of the grid
        assert nine in SDXL_BUCKETS_1024


def test_scaled_grid_keeps_the_shape():
    assert bucket_step(1024) == 64 and bucket_step(512) == 32 and bucket_step(128) == 8 and bucket_step(64) == 8
    small = sdxl_buckets(128)
    assert small == [(w // 8, h // 8) for w, h in SDXL_BUCKETS_1024]  # base 128 is exactly the grid / 8
    assert (144, 112) in small and (192, 80) in small
    assert all(w % 8 == 0 and h % 8 == 0 for w, h in small + sdxl_buckets(64))
    assert all(w % 32 == 0 and h % 32 == 0 for w, h in sdxl_buckets(512))


@pytest.mark.parametrize("size, bucket", [((3000, 3000), (1024, 1024)), ((4000, 3000), (1152, 896)), ((3000, 4000), (896, 1152)),
                                          ((1920, 1080), (1344, 768)), ((3000, 1000), (1728, 576)), ((800, 2400), (576, 1728)),
                                          ((4000, 1000), (2048, 512)), ((1100, 1000), (1088, 960))])
def test_nearest_bucket(size, bucket):
    assert nearest_bucket(*size, SDXL_BUCKETS_1024) == bucket


@pytest.mark.parametrize("size", [(4000, 3000), (1920, 1080), (333, 777), (500, 500), (100, 90)])
def test_fit_covers_bucket_and_centres_crop(size):
    fit = fit_bucket(*size, SDXL_BUCKETS_1024)
    bw, bh = fit.bucket
    rw, rh = fit.resized
    assert rw >= bw and rh >= bh and (rw == bw or rh == bh)
    assert abs(rw / rh - size[0] / size[1]) < 0.01 * size[0] / size[1] + 2 / min(rw, rh)
    assert fit.left == (rw - bw) // 2 and fit.top == (rh - bh) // 2
    out = apply_fit(Image.new("RGB", size), fit)
    assert out.size == fit.bucket


def test_upscale_and_crop_share():
    assert fit_bucket(4000, 3000, SDXL_BUCKETS_1024).upscale < 1 < fit_bucket(400, 300, SDXL_BUCKETS_1024).upscale
    assert fit_bucket(4000, 3000, SDXL_BUCKETS_1024).crop_share < 0.05
    assert fit_bucket(6000, 1000, SDXL_BUCKETS_1024).crop_share > 0.3  # 6:1 is beyond the widest bucket (4:1)


@pytest.mark.parametrize("size", [(1224, 816), (3000, 2000), (500, 400)])  # enlarged, reduced-scale decode, enlarged
def test_a_written_bucket_image_keeps_colours_and_the_crop_window(tmp_path, size):
    """Left half red, right half blue, a green band at the top: after resize, crop and JPEG the halves keep their
    colours (no RGB/BGR swap) and sit where the crop offsets say."""
    im = Image.new("RGB", size, (220, 20, 20))
    im.paste((20, 20, 220), (size[0] // 2, 0, size[0], size[1]))
    im.paste((20, 200, 20), (0, 0, size[0], size[1] // 10))
    im.save(tmp_path / "src.jpg", quality=95)
    fit = fit_bucket(*size, SDXL_BUCKETS_1024)
    dest = render(RenderJob(str(tmp_path / "src.jpg"), str(tmp_path / "out.jpg"), fit, Limits(1, 10**9), (255, 255, 255)))
    out = np.asarray(Image.open(dest).convert("RGB"), dtype=np.int16)
    assert out.shape == (fit.bucket[1], fit.bucket[0], 3)
    split = fit.resized[0] // 2 - fit.left  # the red/blue edge in the written picture's columns
    band = fit.resized[1] // 10 - fit.top
    red, blue = out[band + 20:, : split - 20].mean(axis=(0, 1)), out[band + 20:, split + 20 :].mean(axis=(0, 1))
    assert red[0] > 200 > 40 > red[2] and blue[2] > 200 > 40 > blue[0]
    assert out[: max(1, band - 5), :, 1].mean() > 180  # the green band stays at the top
