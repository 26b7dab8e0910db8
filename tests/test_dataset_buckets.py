"""SDXL buckets: the standard set at 1024, scaled sets, nearest-aspect choice, exact fit with centred crop."""

import pytest
from PIL import Image

from pistachio_nb.dataset.buckets import SDXL_BUCKETS_1024, apply_fit, fit_bucket, nearest_bucket, sdxl_buckets


def test_standard_set_and_scaling():
    assert sdxl_buckets(1024) == SDXL_BUCKETS_1024
    small = sdxl_buckets(128)
    assert (128, 128) in small and (144, 112) in small and (192, 80) in small
    assert all(w % 8 == 0 and h % 8 == 0 for w, h in small + sdxl_buckets(64))
    assert all(abs(w * h - 1024 * 1024) / (1024 * 1024) < 0.07 for w, h in SDXL_BUCKETS_1024)


@pytest.mark.parametrize("size, bucket", [((3000, 3000), (1024, 1024)), ((4000, 3000), (1152, 896)), ((3000, 4000), (896, 1152)),
                                          ((1920, 1080), (1344, 768)), ((3000, 1000), (1536, 640)), ((800, 2400), (640, 1536))])
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
    assert fit_bucket(5000, 1000, SDXL_BUCKETS_1024).crop_share > 0.2
