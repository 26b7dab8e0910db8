"""Masked (face-weighted) loss: masks from files and alpha at latent resolution, cached and invalidated by content,
refused before training when broken, and a masked region that learns faster than the rest on a tiny overfit case."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pistachio_nb.errors import InputDataError, ParamsError
from pistachio_nb.training import masks as masks_module
from pistachio_nb.training import train_lora
from pistachio_nb.training.data import load_dataset
from pistachio_nb.training.loop import resume_or_start, run_loop, setup_run
from pistachio_nb.training.loss import validation_loss
from pistachio_nb.training.masks import build_masks, mask_file, mask_summary
from tests.training_data import training_params, write_tiny_dataset

FOLDER = "train/2_ohwx woman"


def _save_mask(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array.astype(np.uint8)).save(path)
    return path


def _left_half(size: int = 64) -> np.ndarray:
    m = np.zeros((size, size), np.uint8)
    m[:, : size // 2] = 255
    return m


def test_file_mask_is_cached_at_latent_resolution_reused_and_invalidated(tmp_path, monkeypatch):
    root = write_tiny_dataset(tmp_path / "dataset")
    data = load_dataset(root, 64)
    first = data.train[0]
    _save_mask(mask_file(first.path), _left_half())
    assert mask_file(first.path).name == "img0-masklabel.png"
    weights = build_masks("file", 0.1, data.train, tmp_path / "cache")
    got = weights.masks(data.train)
    assert got[0].shape == (1, 8, 8) and all(m is None for m in got[1:])  # 64 px -> an 8x8 latent; others unmasked
    assert torch.equal(got[0][0, :, :4], torch.ones(8, 4)) and torch.equal(got[0][0, :, 4:], torch.zeros(8, 4))
    w = weights.weights(data.train[:2])
    assert w.shape == (2, 1, 8, 8) and w[0, 0, 0, 0] == 1 and w[0, 0, 0, 7] == pytest.approx(0.1) and torch.all(w[1] == 1)
    assert weights.weights(data.train[1:2]) is None  # a batch without masks trains exactly as before
    assert len(list((tmp_path / "cache" / "masks").glob("*.safetensors"))) == 1

    calls = []
    real = masks_module.render_mask
    monkeypatch.setattr(masks_module, "render_mask", lambda plan, ex: calls.append(plan.path) or real(plan, ex))
    again = build_masks("file", 0.1, data.train, tmp_path / "cache").masks(data.train)
    assert calls == [] and torch.equal(again[0], got[0])  # a new run reads the cached mask
    _save_mask(mask_file(first.path), 255 - _left_half())  # the user redraws the mask: a new entry
    redrawn = build_masks("file", 0.1, data.train, tmp_path / "cache").masks(data.train)
    assert calls == [mask_file(first.path)] and torch.equal(redrawn[0], 1 - got[0])
    assert len(list((tmp_path / "cache" / "masks").glob("*.safetensors"))) == 2
    small = load_dataset(root, 32).train
    half_res = build_masks("file", 0.1, small, tmp_path / "cache").masks(small[:1])
    assert len(calls) == 2 and half_res[0].shape == (1, 4, 4)  # another training resolution: another entry


def test_alpha_mask_from_the_dataset_image_and_from_the_source_photo(tmp_path):
    root = write_tiny_dataset(tmp_path / "dataset", n_train=2, n_val=0)
    rows = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]
    rgba = Image.open(root / rows[0]["file_name"]).convert("RGBA")
    alpha = np.zeros((64, 64), np.uint8)
    alpha[:32] = 255  # top half opaque
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(root / rows[0]["file_name"])
    # the second image is a 64x64 centre crop of a 128x64 photo whose opaque part is x < 64: the crop's left half
    source_dir = tmp_path / "photos"
    source_dir.mkdir()
    photo = Image.new("RGBA", (128, 64), (200, 10, 10, 0))
    photo.putalpha(Image.fromarray(np.where(np.arange(128)[None, :] < 64, 255, 0).repeat(64, 0).astype(np.uint8)))
    photo.save(source_dir / "wide.png")
    rows[1].update(source="wide.png", original_width=128, original_height=64, crop_left=32, crop_top=0)
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "metadata.jsonl.params.json").write_text(json.dumps({"params": {"source_dir": str(source_dir)}}))
    data = load_dataset(root, 64)
    weights = build_masks("alpha", 0.0, data.train, tmp_path / "cache")
    top, left = weights.masks(data.train)
    assert [weights.plans[ex.path].kind for ex in data.train] == ["alpha", "alpha_source"]
    assert torch.equal(top[0, :4], torch.ones(4, 8)) and torch.equal(top[0, 4:], torch.zeros(4, 8))
    assert torch.equal(left[0, :, :4], torch.ones(8, 4)) and torch.equal(left[0, :, 4:], torch.zeros(8, 4))
    table = mask_summary(training_params(tmp_path, masked_loss="alpha", mask_outside_weight=0.1))
    assert list(table["mask from"]) == [f"alpha: {data.train[0].path.name}", "alpha_source: wide.png"]
    assert list(table["mask covers %"]) == [50.0, 50.0]
    assert table["loss weight inside %"].iloc[0] == pytest.approx(100 / 1.1, abs=0.1)  # 0.5 / (0.5 + 0.1 * 0.5)


def test_broken_masks_are_refused_before_any_weights_load(tmp_path, monkeypatch):
    root = write_tiny_dataset(tmp_path / "dataset")
    image = root / FOLDER / "img0.png"
    monkeypatch.setattr("pistachio_nb.training.loop.load_for_training", lambda *a: pytest.fail("weights loaded"))
    p = training_params(tmp_path, masked_loss="file", mask_outside_weight=0.1)
    with pytest.raises(InputDataError, match="no -masklabel.png file beside any image, e.g. .*img0-masklabel.png"):
        train_lora(p)
    _save_mask(mask_file(image), np.zeros((32, 32)))
    with pytest.raises(InputDataError, match=r"img0-masklabel.png is 32x32 but its image img0.png is 64x64"):
        train_lora(p)
    mask_file(image).write_bytes(b"not a png")
    with pytest.raises(InputDataError, match=r"mask file .*img0-masklabel.png cannot be read"):
        train_lora(p)
    _save_mask(mask_file(image), np.zeros((64, 64)))
    with pytest.raises(InputDataError, match=r"img0.png is empty \(all black\) and mask_outside_weight is 0"):
        train_lora(training_params(tmp_path, masked_loss="file", mask_outside_weight=0.0))
    with pytest.raises(InputDataError, match="no dataset image and no source photo has an alpha channel"):
        train_lora(training_params(tmp_path, masked_loss="alpha", mask_outside_weight=0.1))
    with pytest.raises(ParamsError, match="mask_outside_weight 1 weighs inside and outside alike"):
        training_params(tmp_path, masked_loss="file", mask_outside_weight=1.0)


def _region_falls(tmp_path: Path, mask: torch.Tensor | None, region: torch.Tensor) -> tuple[float, float]:
    """Train 60 steps on one block-textured image (each latent cell its own colour, so no region can be
    inferred from another), optionally masked with nothing learned outside; the (after / before) loss of
    `region` and of the rest, at fixed timesteps and noise."""
    shutil.rmtree(tmp_path, ignore_errors=True)
    root = write_tiny_dataset(tmp_path / "dataset", n_train=1, n_val=0, repeats=1)
    image = root / "train/1_ohwx woman/img0.png"
    blocks = np.random.default_rng(0).integers(0, 255, (8, 8, 3)).astype(np.uint8)
    Image.fromarray(blocks.repeat(8, 0).repeat(8, 1)).save(image)
    if mask is not None:
        _save_mask(mask_file(image), mask[0, 0].repeat_interleave(8, 0).repeat_interleave(8, 1).numpy() * 255)
    p = training_params(tmp_path, max_steps=60, unet_lr=0.01, min_snr_gamma=0.0, noise_offset=0.0, checkpoint_every=60,
                        masked_loss="file" if mask is not None else "none", mask_outside_weight=0.0)  # fmt: skip
    run = setup_run(p, load_dataset(p.ws.dataset, p.resolution), p.ws.lora)
    progress = resume_or_start(run, None)
    batch = run.featurizer.batch(run.data.train, "cpu", vary=False)
    losses = lambda w: np.mean([validation_loss(run.pipe.unet, run.noise_scheduler, batch, s, w) for s in range(4)])  # noqa: E731
    before = [losses(region), losses(1 - region)]
    run_loop(run, progress, None)
    inside, outside = (losses(w) / b for w, b in zip((region, 1 - region), before))
    print(f"mask {'none' if mask is None else 'on'}: region {before[0]:.3f} -> x{inside:.3f}, rest {before[1]:.3f} -> x{outside:.3f}")
    return inside, outside


def test_the_masked_region_learns_faster_than_the_rest(tmp_path):
    left = torch.zeros(1, 1, 8, 8)
    left[..., :4] = 1
    control = _region_falls(tmp_path / "none", None, left)
    masked_left = _region_falls(tmp_path / "left", left, left)
    masked_right = _region_falls(tmp_path / "right", 1 - left, left)
    # measured (60 steps, outside weight 0, loss after/before): unmasked, left x0.648 and right x0.660;
    # left masked: left x0.688, right x0.761; right masked: left x0.732, right x0.676
    assert abs(control[0] - control[1]) < 0.03  # without a mask the two halves learn alike ...
    assert masked_left[0] < masked_left[1] - 0.04  # ... masked, the masked half's loss falls faster
    assert masked_right[1] < masked_right[0] - 0.04  # whichever half it is


def test_face_masks_come_from_the_dataset_faces_and_cover_the_head(tmp_path):
    """A real photo through 01_dataset (crop: face) gives a faces.json; its mask sits where her face is."""
    from pistachio_nb.dataset import prepare_dataset
    from pistachio_nb.evaluation.identity_check import real_people
    from pistachio_nb.training.masks import face_mask

    from tests.dataset_helpers import make_params

    source = tmp_path / "source"
    source.mkdir()
    hopper = real_people()["hopper"]
    hopper.save(source / "hopper.png")
    hopper.transpose(0).save(source / "mirror.png")
    ds = prepare_dataset(make_params(tmp_path / "ws", source, min_side=64, dedup_threshold=0, validation_ratio=0.0, base_resolution=256))
    data = load_dataset(tmp_path / "ws" / "dataset", 256)
    weights = build_masks("face", 0.1, data.train, tmp_path / "cache")
    masks = weights.masks(data.train)
    assert len(masks) == 2 and all(m is not None for m in masks)
    assert ds.manifest.set_index("path").loc["hopper.png", "identity"] >= 0.363
    for ex, mask in zip(data.train, masks):
        assert mask.shape[1:] == (ex.size[1] // 8, ex.size[0] // 8) and 0.05 < float(mask.mean()) < 0.6
        rows, cols = np.nonzero(mask[0].numpy() > 0.5)
        assert 0.25 < cols.mean() / mask.shape[2] < 0.75 and rows.mean() / mask.shape[1] < 0.6  # the head, upper middle
    assert weights.weights(data.train[:1]).min() == pytest.approx(0.1)
    assert face_mask((), data.train[0].fit).getextrema() == (0, 0)  # no face: nothing inside
