"""Quality signals: the blur score separates sharp from blurred copies; flags follow their thresholds."""

import random

from PIL import ImageFilter

from pistachio_nb.dataset.quality import analysis_size, blur_score, quality_flags
from pistachio_testkit.demo_data import draw_scene


def test_blur_score_drops_with_blur():
    gray = draw_scene(random.Random(7), (384, 288)).convert("L")
    scores = [blur_score(gray.filter(ImageFilter.GaussianBlur(r))) for r in (0, 1, 3)]
    assert scores[0] > 2 * scores[1] > 2 * scores[2] > 0


def test_analysis_size_fixes_the_short_side():
    assert analysis_size(4000, 3000) == (256, 192)
    assert analysis_size(300, 900) == (192, 576)


def test_flags_follow_thresholds():
    assert quality_flags(10.0, 50.0, 1.0, 0.0) == ["blurry"]
    assert quality_flags(80.0, 50.0, 1.05, 0.1) == []
    assert quality_flags(80.0, 50.0, 1.5, 0.3) == ["upscaled", "heavy_crop"]
