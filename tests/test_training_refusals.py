"""03_training refuses what cannot work before any weights load, naming the field, and warns about silent upscaling."""

from __future__ import annotations

import pytest

from pistachio_nb.errors import ParamsError
from pistachio_nb.paths import repo_root
from pistachio_nb.runner import missing_artifacts
from pistachio_nb.training import dataset_summary, loop, sample_grid, train_lora, vram_plan
from pistachio_nb.training.vram import plan_vram
from tests.training_data import training_params, write_tiny_dataset


@pytest.fixture
def ws(tmp_path):
    write_tiny_dataset(tmp_path / "dataset")
    return tmp_path


@pytest.fixture
def no_weights(monkeypatch):
    """Make loading the model's weights fail loudly: a refusal must come before it."""

    def load_for_training(*args, **kwargs):
        raise AssertionError("weights loaded before the config was refused")

    monkeypatch.setattr(loop, "load_for_training", load_for_training)


def test_unknown_target_module_is_refused_before_weights_load_with_close_names(ws, no_weights):
    with pytest.raises(ParamsError, match=r"target_modules.*'to_qq'.*did you mean.*'to_q'") as err:
        train_lora(training_params(ws, target_modules=["to_qq", "to_k"]))
    assert "'to_k'" not in str(err.value).split("did you mean")[0]  # only the unknown entry is named
    assert not (ws / "lora" / "state").exists()


def test_target_matching_only_non_linear_modules_is_refused(ws, no_weights):
    with pytest.raises(ParamsError, match=r"target_modules.*'attn1'.*neither Linear nor Conv2d"):
        vram_plan(training_params(ws, target_modules=["attn1"]))


def test_vram_plan_with_zero_lora_parameters_is_an_error():
    counts = {"unet": 10**6, "vae": 10**5, "text_encoder": 10**5, "text_encoder_2": 10**5,
              "lora_unet": 0, "lora_text_encoders": 1000}  # fmt: skip
    with pytest.raises(ParamsError, match="target_modules.*0 LoRA parameters"):
        plan_vram(counts, resolution=64, batch_size=1, mixed_precision="no", gradient_checkpointing=False,
                  cache_latents=True, cache_text_embeddings=True, train_text_encoder=False, optimizer="adamw",
                  gpu_gb=None)  # fmt: skip


def test_empty_sample_prompts_run_has_every_declared_artifact_and_says_no_samples(ws):
    p = training_params(ws, max_steps=2, checkpoint_every=2, sample_prompts=[], sample_seeds=[])
    result = train_lora(p)
    assert result.checkpoints[-1]["samples"] == []
    assert missing_artifacts(repo_root() / "notebooks" / "03_training.ipynb", p.ws.root) == []
    assert "no sample prompts" in sample_grid(result.lora_dir)._suptitle.get_text()


def test_resolution_above_the_dataset_bucket_base_warns_with_the_numbers(ws):
    p = training_params(ws, resolution=128, max_steps=1, checkpoint_every=1, validation_every=1)
    summary = dataset_summary(p)
    assert "above the dataset's bucket base 64" in summary.loc["WARNING: upscaled", "value"]
    with pytest.warns(UserWarning, match=r"resolution 128 is above the dataset's bucket base 64.*2\.00x"):
        result = train_lora(p)
    assert any("bucket base 64" in w for w in result.warnings)


def test_resolution_at_the_bucket_base_does_not_warn(ws):
    p = training_params(ws, resolution=64)
    assert "WARNING: upscaled" not in dataset_summary(p).index


def test_notebook_run_with_unknown_target_module_exits_2_naming_the_field(tmp_path, capsys):
    from pistachio_nb.cli import main
    from pistachio_nb.runner import EXIT_PARAMS

    write_tiny_dataset(tmp_path / "ws" / "dataset")
    profile = tmp_path / "p.yaml"
    profile.write_text(f"common:\n  workspace: {tmp_path / 'ws'}\n")
    notebook = str(repo_root() / "notebooks" / "03_training.ipynb")
    assert main(["run", notebook, "--params", str(profile), "--set", "target_modules=[to_qq]",
                 "--runs-dir", str(tmp_path / "runs")]) == EXIT_PARAMS
    out = capsys.readouterr()
    assert "target_modules" in out.out + out.err and "to_qq" in out.out + out.err
    assert not (tmp_path / "ws" / "lora" / "state").exists()
