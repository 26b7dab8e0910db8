"""Exported LoRA files: kohya keys + alpha + ss_* metadata, and both formats reproduce the in-memory model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers.utils import convert_state_dict_to_kohya
from safetensors import safe_open
from safetensors.torch import load_file

from pistachio_nb.models import load_sdxl_pipeline
from pistachio_nb.training.export import DIFFUSERS_WEIGHTS, lora_state_dicts, to_kohya
from tests.training_data import train_in_memory

TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2"]  # linear and conv adapters


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny LoRA (rank 4, alpha 2, UNet + both text encoders) trained 3 steps, still in memory."""
    return train_in_memory(tmp_path_factory.mktemp("export"), max_steps=3, checkpoint_every=3, unet_lr=0.01,
                           text_encoder_lr=0.01, rank=4, alpha=2.0, train_text_encoder=True, cache_text_embeddings=False,
                           target_modules=TARGETS)  # fmt: skip


def _image(pipe) -> np.ndarray:
    out = pipe("photo of ohwx woman", height=64, width=64, num_inference_steps=3, guidance_scale=5.0,
               generator=torch.Generator("cpu").manual_seed(7), output_type="np")  # fmt: skip
    return out.images[0]


def _kohya_file(run):
    return run.out / "character-step-00000003.safetensors"


def test_kohya_keys_alpha_and_metadata(trained):
    state = load_file(_kohya_file(trained))
    prefixes = {k.split("_", 2)[1] for k in state}
    assert prefixes == {"unet", "te1", "te2"}
    assert "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight" in state
    assert "lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight" in state
    assert "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.alpha" in state
    alphas = {v.item() for k, v in state.items() if k.endswith(".alpha")}
    assert alphas == {2.0}  # the trained alpha, not the rank
    downs = [k for k in state if k.endswith("lora_down.weight")]
    assert all(state[k].shape[0] == 4 for k in downs)
    assert len([k for k in state if k.endswith(".alpha")]) == len(downs)
    with safe_open(str(_kohya_file(trained)), "pt") as f:
        meta = f.metadata()
    assert meta["ss_network_dim"] == "4" and meta["ss_network_alpha"] == "2.0"
    assert meta["ss_steps"] == "3" and meta["ss_trigger"] == "ohwx"
    assert json.loads(meta["ss_tag_frequency"])["2_ohwx woman"]["ohwx woman"] == 4


def test_diffusers_converter_quirks_we_avoid(trained):
    """Measured on diffusers 0.42: its converter drops the prefix for bare keys and writes alpha = rank."""
    states = lora_state_dicts(trained.pipe)
    theirs = convert_state_dict_to_kohya(states["unet"])
    assert not any(k.startswith("lora_unet_") for k in theirs)
    assert {v.item() for k, v in theirs.items() if k.endswith(".alpha")} == {4}
    ours = to_kohya(states, rank=4, alpha=2.0, dtype=torch.float32)
    assert all(k.startswith(("lora_unet_", "lora_te1_", "lora_te2_")) for k in ours)


@pytest.mark.parametrize("fmt", ["kohya", "diffusers"])
def test_exported_lora_reproduces_the_in_memory_model(trained, fmt):
    expected = _image(trained.pipe)
    fresh = load_sdxl_pipeline(trained.p.base_model, device="cpu")
    base = _image(fresh)
    source = _kohya_file(trained) if fmt == "kohya" else trained.out / "diffusers" / "step-00000003" / DIFFUSERS_WEIGHTS
    fresh.load_lora_weights(str(source))
    loaded = _image(fresh)
    assert np.abs(base - expected).max() > 1e-3  # the LoRA visibly changes the image ...
    np.testing.assert_allclose(loaded, expected, atol=1e-5)  # ... and the file reproduces it


def test_export_crash_leaves_no_partial_files(tmp_path, monkeypatch, trained):
    from pistachio_nb.training import export

    states = lora_state_dicts(trained.pipe)

    def crash(tensors, path, metadata=None):
        open(path, "wb").write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(export, "save_file", crash)
    with pytest.raises(OSError):
        export.save_kohya(tmp_path / "x.safetensors", states, 4, 2.0, torch.float32, {})
    monkeypatch.setattr(export.StableDiffusionXLPipeline, "save_lora_weights", lambda folder, **kw: crash({}, folder / "w"))
    with pytest.raises(OSError):
        export.save_diffusers(tmp_path / "diffusers" / "step", states, export.adapter_configs(trained.pipe), torch.float32)
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []


def test_a_dora_export_reloads_in_diffusers_to_the_in_memory_image(tmp_path):
    """DoRA through diffusers' own format (its kohya loader drops `dora_scale`; ComfyUI applies it exactly:
    tests/integration/test_real_lora_apply.py)."""
    run = train_in_memory(tmp_path, max_steps=3, checkpoint_every=3, unet_lr=0.01, rank=4, alpha=2.0, network_type="dora",
                          target_modules=["to_q", "to_k", "to_v", "to_out.0"])  # fmt: skip
    expected = _image(run.pipe)
    fresh = load_sdxl_pipeline(run.p.base_model, device="cpu")
    base = _image(fresh)
    fresh.load_lora_weights(str(run.out / "diffusers" / "step-00000003" / DIFFUSERS_WEIGHTS))
    assert np.abs(base - expected).max() > 1e-3
    np.testing.assert_allclose(_image(fresh), expected, atol=1e-5)
