"""Masks and paste-back without a model: shapes, files, validation, grow/feather, unmasked pixels untouched."""

import random

import numpy as np
import pytest
from PIL import Image

from pistachio_nb.errors import ParamsError
from pistachio_nb.inpainting.masks import MaskError, build_masks, feather, grow, load_mask_file, regions_mask
from pistachio_nb.inpainting.paste import crop_for_model, paste_back, plan_crop, widen, work_size
from pistachio_nb.inpainting.views import overlay, pixels_changed
from pistachio_nb.inpainting import InpaintingParams, MaskRegion
from pistachio_testkit.demo_data import draw_scene

SIZE = (96, 80)


@pytest.fixture
def demo_values():
    from tests.test_inpainting import notebook_defaults

    return notebook_defaults()


def region(shape="rectangle", box=(0.25, 0.25, 0.75, 0.75), units="relative"):
    return MaskRegion(shape=shape, box=box, units=units)


def area(mask):
    return int((np.asarray(mask) > 0).sum())


def test_relative_and_pixel_boxes_paint_the_same_pixels():
    rel = regions_mask(SIZE, [region(box=(0.25, 0.25, 0.75, 0.75))])
    px = regions_mask(SIZE, [region(box=(24, 20, 72, 60), units="pixels")])
    assert np.array_equal(np.asarray(rel), np.asarray(px))
    assert area(rel) == 48 * 40


def test_ellipse_is_inside_its_box_and_regions_combine():
    rect = regions_mask(SIZE, [region()])
    ell = regions_mask(SIZE, [region("ellipse")])
    assert 0.7 * area(rect) < area(ell) < area(rect)
    assert not (np.asarray(ell) > np.asarray(rect)).any()
    both = regions_mask(SIZE, [region(box=(0, 0, 0.2, 0.2)), region(box=(0.8, 0.8, 1, 1))])
    assert area(both) == area(regions_mask(SIZE, [region(box=(0, 0, 0.2, 0.2))])) * 2


def test_mask_file_of_other_size_is_refused_unless_resize(tmp_path):
    path = tmp_path / "mask.png"
    Image.new("L", (48, 40), 255).save(path)
    with pytest.raises(MaskError, match=r"mask.png is 48x40 but the image is 96x80") as err:
        load_mask_file(path, SIZE, resize=False)
    assert "resize_mask" in str(err.value)
    assert load_mask_file(path, SIZE, resize=True).size == SIZE


def test_unreadable_mask_file_is_refused(tmp_path):
    path = tmp_path / "mask.png"
    path.write_text("not a picture")
    with pytest.raises(MaskError, match="cannot read"):
        load_mask_file(path, SIZE, resize=False)


def test_empty_mask_is_refused(tmp_path):
    black = tmp_path / "black.png"
    Image.new("L", SIZE, 0).save(black)
    with pytest.raises(MaskError, match="mask is empty"):
        build_masks(SIZE, [], black)
    with pytest.raises(MaskError, match="after shrinking by 10 px"):
        build_masks(SIZE, [region(box=(40, 30, 50, 40), units="pixels")], grow_pixels=-10)
    with pytest.raises(MaskError, match="mask is empty"):
        build_masks(SIZE, [region(box=(0.5, 0.5, 0.501, 0.501))])  # rounds to no pixel


def test_mask_file_and_regions_are_united(tmp_path):
    path = tmp_path / "mask.png"
    regions_mask(SIZE, [region(box=(0, 0, 0.3, 0.3))]).save(path)
    masks = build_masks(SIZE, [region(box=(0.7, 0.7, 1, 1))], path)
    assert area(masks.hard) == area(regions_mask(SIZE, [region(box=(0, 0, 0.3, 0.3)), region(box=(0.7, 0.7, 1, 1))]))


def test_grow_and_shrink_change_the_area_and_feather_softens_the_edge():
    mask = regions_mask(SIZE, [region()])
    assert area(grow(mask, 4)) > area(mask) > area(grow(mask, -4)) > 0
    soft = np.asarray(feather(mask, 8))
    assert ((soft > 0) & (soft < 255)).any()  # a ramp, not a step
    assert soft[0, 0] == 0 and soft[40, 48] == 255  # far outside untouched, centre fully repainted


def test_overlay_tints_only_the_mask():
    image = Image.new("RGB", SIZE, (10, 200, 10))
    mask = regions_mask(SIZE, [region()])
    out = np.asarray(overlay(image, mask))
    assert (out[0, 0] == (10, 200, 10)).all() and out[40, 48, 0] > 100


def test_params_refuse_no_mask_and_zero_denoising_steps(demo_values):
    with pytest.raises(ParamsError, match="no mask"):
        InpaintingParams.validate_values({**demo_values, "mask_regions": [], "mask_file": ""})
    with pytest.raises(ParamsError, match="runs no denoising step"):
        InpaintingParams.validate_values({**demo_values, "steps": 2, "sweep_strengths": [0.3, 1.0]})
    with pytest.raises(ParamsError, match="left < right"):
        InpaintingParams.validate_values({**demo_values, "mask_regions": [{"shape": "ellipse", "box": [0.5, 0, 0.2, 1], "units": "relative"}]})


@pytest.mark.parametrize("only_masked", [True, False])
def test_paste_back_keeps_every_pixel_outside_the_feathered_mask(only_masked):
    image = draw_scene(random.Random(3), SIZE)
    masks = build_masks(SIZE, [region("ellipse", (0.3, 0.2, 0.6, 0.7))], grow_pixels=2, feather_radius=6)
    crop = plan_crop(masks.soft, only_masked, padding=8, native=64)
    model_in = crop_for_model(image, crop)
    assert model_in.size == crop.work_size
    generated = Image.fromarray(np.random.default_rng(0).integers(0, 256, (*model_in.size[::-1], 3), dtype=np.uint8))
    pasted = paste_back(image, generated, masks.soft, crop)
    out, orig, soft = np.asarray(pasted), np.asarray(image), np.asarray(masks.soft)
    assert np.array_equal(out[soft == 0], orig[soft == 0])
    assert (out[soft == 255] != orig[soft == 255]).any()
    assert pixels_changed(image, pasted, outside=masks.soft) == 0 < pixels_changed(image, pasted)


def test_only_masked_crop_is_padded_box_at_native_resolution():
    mask = regions_mask((400, 300), [region(box=(100, 100, 140, 160), units="pixels")])
    crop = plan_crop(mask, True, padding=20, native=64)
    assert crop.box == (80, 80, 160, 180)
    assert all(s % 8 == 0 for s in crop.work_size) and abs(crop.work_size[0] * crop.work_size[1] - 64 * 64) < 1200
    assert plan_crop(mask, True, padding=500, native=64).box == (0, 0, 400, 300)  # clipped to the image
    assert plan_crop(mask, False, padding=20, native=64).box == (0, 0, 400, 300)
    assert work_size((1000, 1000), 1024) == (1024, 1024)


def test_thin_crops_are_widened_with_context_to_a_workable_aspect():
    assert widen((100, 100, 400, 120), (1000, 800)) == (100, 35, 400, 185)  # 300x20 -> 300x150, centred
    assert widen((0, 0, 40, 300), (1000, 800)) == (0, 0, 150, 300)  # at the edge: shifted inside
    assert widen((10, 10, 50, 50), (1000, 800)) == (10, 10, 50, 50)  # square: unchanged
    assert widen((0, 390, 1000, 400), (1000, 400)) == (0, 0, 1000, 400)  # cannot exceed the image
    mask = regions_mask((1000, 800), [region(box=(100, 100, 400, 120), units="pixels")])
    w, h = plan_crop(mask, True, padding=0, native=1024, multiple=32).work_size
    assert w / h <= 2.1 and w % 32 == 0 and h % 32 == 0
