"""Training config: every contradiction is refused with an explanation, before any model loads."""

from __future__ import annotations

import pytest

from pistachio_nb.errors import InputDataError, ParamsError
from pistachio_nb.training import config, train_lora
from pistachio_nb.training.checkpoint import find_state
from tests.training_data import training_params, write_tiny_dataset

CONTRADICTIONS = [
    ({"max_steps": 0, "epochs": 0}, "zero training steps"),
    ({"max_steps": 10, "epochs": 2}, "not both"),
    ({"cache_text_embeddings": True, "train_text_encoder": True, "text_encoder_lr": 1e-4}, "go stale"),
    ({"cache_text_embeddings": True, "caption_shuffle": True}, "freezes one tag order"),
    ({"cache_text_embeddings": False, "train_text_encoder": True, "text_encoder_lr": 0.0}, "text_encoder_lr > 0"),
    ({"lr_scheduler": "constant", "lr_warmup_steps": 5}, "constant_with_warmup"),
    ({"lr_scheduler": "cosine", "max_steps": 4, "lr_warmup_steps": 4}, "below max_steps"),
    ({"sample_prompts": ["x"], "sample_seeds": []}, "sample_seeds is empty"),
    ({"prior_preservation": True, "class_prompt": " "}, "needs a class_prompt"),
    ({"prior_preservation": True, "num_class_images": 0}, "num_class_images > 0"),
]


@pytest.mark.parametrize("overrides, explanation", CONTRADICTIONS, ids=[c[1] for c in CONTRADICTIONS])
def test_contradiction_refused_with_explanation(tmp_path, overrides, explanation):
    with pytest.raises(ParamsError, match=explanation):
        training_params(tmp_path, **overrides)


def test_out_of_range_field_is_named(tmp_path):
    with pytest.raises(ParamsError, match="rank"):
        training_params(tmp_path, rank=0)


@pytest.mark.parametrize(
    "overrides, explanation",
    [({"mixed_precision": "fp16"}, "needs a CUDA GPU")],  # adamw8bit runs on the CPU with bitsandbytes 0.50
)
def test_device_contradictions_refused_on_cpu(tmp_path, overrides, explanation):
    p = training_params(tmp_path, **overrides)
    with pytest.raises(ParamsError, match=explanation):
        config.check_device(p, "cpu")


def test_fp16_on_cpu_stops_train_lora_before_anything_is_written(tmp_path):
    write_tiny_dataset(tmp_path / "dataset")
    with pytest.raises(ParamsError, match="fp16"):
        train_lora(training_params(tmp_path, mixed_precision="fp16"))
    assert not (tmp_path / "lora").exists()


def test_resume_mismatch_names_every_difference(tmp_path):
    saved = {**training_params(tmp_path).model_dump(mode="json"), "dataset_fingerprint": "abc"}
    p = training_params(tmp_path, rank=8, seed=3)
    with pytest.raises(ParamsError) as err:
        config.check_resume(p, saved, "state/step-00000002", "abd")
    for diff in ("rank: saved 4, now 8", "seed: saved 0, now 3", "dataset_fingerprint: saved 'abc', now 'abd'"):
        assert diff in str(err.value)
    config.check_resume(training_params(tmp_path, max_steps=40), saved, "x", "abc")  # extending a run is fine


def test_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(InputDataError, match="metadata.jsonl") as err:
        train_lora(training_params(tmp_path))
    assert "01_dataset" in err.value.fix


def test_resume_paths(tmp_path):
    assert find_state(tmp_path, "") is None
    assert find_state(tmp_path, "latest") is None  # nothing saved yet: fresh start
    with pytest.raises(InputDataError, match="not a saved training state"):
        find_state(tmp_path, str(tmp_path / "nope"))
