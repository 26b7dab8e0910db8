"""Prior preservation (class images per bucket, user folder read only) and the text-encoder / checkpointing path."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pistachio_nb.models import load_sdxl_pipeline
from pistachio_nb.training import train_lora
from pistachio_nb.training.data import load_dataset
from pistachio_nb.training.prior import class_batch, class_examples
from tests.training_data import training_params, write_tiny_dataset


def test_class_images_fit_user_images_and_generate_the_rest(tmp_path):
    data = load_dataset(write_tiny_dataset(tmp_path / "dataset", n_train=4, n_val=0, sizes=((64, 64), (48, 80))), 64)
    user = tmp_path / "my_class_images"
    user.mkdir()
    Image.fromarray(np.full((90, 50, 3), 200, np.uint8)).save(user / "tall.jpg")
    before = (user / "tall.jpg").read_bytes()
    pipe = load_sdxl_pipeline("tiny:sdxl", device="cpu")
    work = tmp_path / "class_images"
    found = class_examples(pipe, data.train, work, user, "photo of a woman", wanted=4, seed=0, steps=2)
    assert (user / "tall.jpg").read_bytes() == before and sorted(p.name for p in user.iterdir()) == ["tall.jpg"]
    assert (work / "48x80" / "user-tall.png").exists()  # fitted into the nearest (portrait) bucket
    assert {ex.size for ex in found} == {(64, 64), (48, 80)}
    assert len(found) == 4 and all(Image.open(ex.path).size == ex.size for ex in found)
    again = class_examples(pipe, data.train, work, user, "photo of a woman", wanted=4, seed=0, steps=2)
    assert [ex.path for ex in again] == [ex.path for ex in found]  # cached: nothing regenerated
    batch = class_batch(found, (48, 80), 2, step=3)
    assert len(batch) == 2 and all(ex.size == (48, 80) for ex in batch)


def test_text_encoder_training_with_gradient_checkpointing_and_prior(tmp_path):
    write_tiny_dataset(tmp_path / "dataset", n_train=2, n_val=1)
    p = training_params(tmp_path, max_steps=2, checkpoint_every=2, train_text_encoder=True, text_encoder_lr=0.01,
                        cache_text_embeddings=False, caption_shuffle=True, gradient_checkpointing=True,
                        prior_preservation=True, num_class_images=2, unet_lr=0.01)  # fmt: skip
    result = train_lora(p)
    from safetensors.torch import load_file

    state = load_file(result.final_lora)
    for prefix in ("lora_unet_", "lora_te1_", "lora_te2_"):
        ups = [k for k in state if k.startswith(prefix) and k.endswith("lora_up.weight")]
        zero = [k for k, v in state.items() if k.startswith(prefix) and k.endswith("lora_up.weight") and v.abs().max() == 0]
        # SDXL reads text encoder 1's penultimate layer, so its last layer's adapters get no gradient
        # (as in kohya); every other adapter must have moved
        expected = [k for k in ups if k.startswith("lora_te1_text_model_encoder_layers_1_")]
        assert ups and zero == expected, zero
    assert len(list((tmp_path / "lora" / "class_images").rglob("*.png"))) == 2


def test_class_images_from_captions_replace_the_trigger_and_follow_each_caption(tmp_path):
    from pistachio_nb.errors import InputDataError
    from pistachio_nb.training.prior import class_caption

    assert class_caption("ohwx woman, red dress, ohwx smiling", "ohwx", "woman") == "woman, red dress, woman smiling"
    assert class_caption("ohwxy, ohwx", "ohwx", "woman") == "ohwxy, woman"  # whole words only
    data = load_dataset(write_tiny_dataset(tmp_path / "dataset", n_train=4, n_val=0, sizes=((64, 64), (48, 80))), 64)
    pipe = load_sdxl_pipeline("tiny:sdxl", device="cpu")
    work = tmp_path / "class_images"
    found = class_examples(pipe, data.train, work, None, "unused", wanted=4, seed=0, steps=2, from_captions=("ohwx", "woman"))
    expected = {class_caption(ex.caption, "ohwx", "woman") for ex in data.train}
    assert len(found) == 4 and {ex.caption for ex in found} == expected and "ohwx" not in " ".join(ex.caption for ex in found)
    for ex in found:  # each class image has its caption's training size and was drawn from its own prompt
        source = next(t for t in data.train if class_caption(t.caption, "ohwx", "woman") == ex.caption)
        assert ex.size == source.size and Image.open(ex.path).size == ex.size
    pixels = [np.asarray(Image.open(ex.path), dtype=float) for ex in found if ex.size == (64, 64)]
    assert np.abs(pixels[0] - pixels[1]).mean() > 0  # different captions (and seeds), different pictures
    stamps = {ex.path: ex.path.stat().st_mtime_ns for ex in found}
    again = class_examples(pipe, data.train, work, None, "unused", wanted=4, seed=0, steps=2, from_captions=("ohwx", "woman"))
    assert [ex.path for ex in again] == [ex.path for ex in found] and all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    with pytest.raises(InputDataError, match="from_captions"):
        class_examples(pipe, data.train, work, None, "unused", wanted=4, seed=0, steps=2, from_captions=("", ""))
