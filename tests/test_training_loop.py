"""The training loop on the tiny SDXL: it learns, resumes exactly, and never leaves half-written checkpoints."""

from __future__ import annotations

import csv
import json
import typing
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pistachio_nb.errors import ParamsError
from pistachio_nb.training import TrainingParams, train_lora
from pistachio_nb.training import checkpoint as ckpt
from pistachio_nb.training.data import load_dataset
from pistachio_nb.training.logs import TrainLog
from pistachio_nb.training.loop import resume_or_start, run_loop, setup_run
from pistachio_nb.training.loss import validation_loss
from tests.training_data import training_params, write_tiny_dataset


def _final_weights(result) -> dict[str, torch.Tensor]:
    return load_file(result.final_lora)


OPTIMIZERS = typing.get_args(TrainingParams.model_fields["optimizer"].annotation)  # all run on CPU
OPTIMIZER_SETTINGS = {"prodigy": {"unet_lr": 1.0}}  # the LR prodigy expects; the others keep the demo's


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_resume_gives_the_same_weights_as_one_run(tmp_path, optimizer):
    for name in "ab":
        write_tiny_dataset(tmp_path / name / "dataset")
    chosen = {"optimizer": optimizer, **OPTIMIZER_SETTINGS.get(optimizer, {})}
    straight = train_lora(training_params(tmp_path / "a", max_steps=4, checkpoint_every=2, **chosen))
    first = train_lora(training_params(tmp_path / "b", max_steps=2, checkpoint_every=2, **chosen))
    assert first.steps_done == 2
    second = train_lora(training_params(tmp_path / "b", max_steps=4, checkpoint_every=2, resume="latest", **chosen))
    assert second.resumed_from is not None and second.resumed_from.name == "step-00000002"
    a, b = _final_weights(straight), _final_weights(second)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
    rows = list(csv.DictReader((tmp_path / "b" / "lora" / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]  # one history, no duplicated steps


@pytest.fixture
def ws(tmp_path):
    write_tiny_dataset(tmp_path / "dataset")
    return tmp_path


def test_training_changes_the_lora_and_lowers_the_loss_on_an_overfit_case(tmp_path):
    write_tiny_dataset(tmp_path / "dataset", n_train=1, n_val=0, repeats=1)
    p = training_params(tmp_path, max_steps=30, unet_lr=0.01, min_snr_gamma=0.0, noise_offset=0.0, checkpoint_every=30,
                        target_modules=["to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2"])
    run = setup_run(p, load_dataset(p.ws.dataset, p.resolution), p.ws.lora)
    progress = resume_or_start(run, None)
    batch = run.featurizer.batch(run.data.train, "cpu")
    before = validation_loss(run.pipe.unet, run.noise_scheduler, batch, seed=123)
    up_before = {k: v.clone() for k, v in run.pipe.unet.state_dict().items() if "lora_B" in k}
    log = TrainLog(p.ws.lora, 0)
    run_loop(run, progress, log)
    log.close()
    after = validation_loss(run.pipe.unet, run.noise_scheduler, batch, seed=123)
    assert all(v.abs().max() == 0 for v in up_before.values())  # LoRA starts as an exact no-op ...
    changed = [k for k, v in run.pipe.unet.state_dict().items() if "lora_B" in k and v.abs().max() > 0]
    assert len(changed) == len(up_before)  # ... and every adapter moved
    assert after < 0.9 * before, (before, after)  # measured: 1.05 -> 0.84


def test_checkpoints_manifest_logs_and_retention(ws):
    result = train_lora(training_params(ws, max_steps=6, checkpoint_every=2, keep_checkpoints=2,
                                        sample_prompts=["{trigger} woman"], sample_seeds=[3], sample_steps=2))
    assert [r["step"] for r in result.checkpoints] == [2, 4, 6]
    assert [s.name for s in ckpt.saved_states(result.lora_dir / "state")] == ["step-00000004", "step-00000006"]
    for row in result.checkpoints:
        assert (result.lora_dir / f"character-step-{row['step']:08d}.safetensors").exists()
        assert row["samples"][0]["prompt"] == "ohwx woman"
        assert row["val_loss"] is not None
    assert list((result.lora_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert len(list(csv.DictReader((result.lora_dir / "metrics.csv").open()))) == 6
    assert not [p for p in result.lora_dir.rglob("*") if p.name.startswith(".")]  # no temp leftovers


def test_crash_while_saving_leaves_previous_state_and_no_partial_one(ws, monkeypatch):
    train_lora(training_params(ws, max_steps=2, checkpoint_every=2))
    real_save = torch.save

    def crash(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        train_lora(training_params(ws, max_steps=4, checkpoint_every=2, resume="latest"))
    state_root = ws / "lora" / "state"
    assert [p.name for p in state_root.iterdir()] == ["step-00000002"]
    assert (state_root / "step-00000002" / "lora.safetensors").exists()


def test_resume_with_changed_rank_or_captions_is_refused(ws):
    train_lora(training_params(ws, max_steps=2, checkpoint_every=2))
    with pytest.raises(ParamsError, match="rank: saved 4, now 8"):
        train_lora(training_params(ws, max_steps=4, rank=8, resume="latest"))
    meta = ws / "dataset" / "metadata.jsonl"
    meta.write_text(meta.read_text().replace("red dress", "green dress"))
    with pytest.raises(ParamsError, match="dataset_fingerprint"):
        train_lora(training_params(ws, max_steps=4, resume="latest"))


def test_cached_and_uncached_latents_train_identically(tmp_path):
    results = []
    for name, cache in (("cached", True), ("plain", False)):
        write_tiny_dataset(tmp_path / name / "dataset")
        p = training_params(tmp_path / name, max_steps=2, checkpoint_every=2, cache_latents=cache, cache_text_embeddings=cache)
        results.append(_final_weights(train_lora(p)))
    for key in results[0]:
        torch.testing.assert_close(results[0][key], results[1][key], rtol=0, atol=1e-6)
    assert any((tmp_path / "cached" / "lora" / "cache" / "latents").iterdir())
    assert not (tmp_path / "plain" / "lora" / "cache").exists()


def test_fresh_start_archives_the_previous_run(ws):
    train_lora(training_params(ws, max_steps=2, checkpoint_every=1))
    again = train_lora(training_params(ws, max_steps=2, checkpoint_every=2))  # resume "": a new run
    assert [r["step"] for r in again.checkpoints] == [2]
    assert sorted(p.name for p in ws.glob("lora/*-step-*.safetensors")) == ["character-step-00000002.safetensors"]
    archived = next((ws / "lora" / "archive").iterdir())
    assert (archived / "character-step-00000001.safetensors").exists() and (archived / "checkpoints.jsonl").exists()


def check_demo_outputs(ws, rendered: str) -> None:
    """Checks of the demo run of 03_training (called from tests/test_notebooks.py)."""
    lora = ws / "lora"
    rows = [json.loads(line) for line in (lora / "checkpoints.jsonl").read_text().splitlines()]
    assert len(rows) >= 2 and rows[-1]["step"] == 24
    for row in rows:
        state = load_file(row["kohya"])
        assert any(k.startswith("lora_unet_") for k in state)
        assert {v.item() for k, v in state.items() if k.endswith(".alpha")} == {2.0}
        assert (Path(row["diffusers"]) / "pytorch_lora_weights.safetensors").exists()
        assert all(Path(s["file"]).exists() for s in row["samples"]) and len(row["samples"]) == 4
        assert row["val_loss"] is not None
    assert (lora / "character.safetensors").exists()
    assert len(list(csv.DictReader((lora / "metrics.csv").open()))) == 24
    assert len(list((lora / "class_images").rglob("*.png"))) >= 4
    assert "validation loss" in rendered and "lora_unet_" in rendered


def test_bf16_mixed_precision_keeps_the_vae_in_fp32_and_exports_bf16(ws):
    p = training_params(ws, max_steps=2, checkpoint_every=2, mixed_precision="bf16")
    run = setup_run(p, load_dataset(p.ws.dataset, p.resolution), p.ws.lora)
    assert run.pipe.vae.dtype == torch.float32 and run.pipe.text_encoder.dtype == torch.bfloat16
    result = train_lora(p)
    assert {v.dtype for v in load_file(result.final_lora).values()} == {torch.bfloat16}
