"""Every key of the kohya LoRA files 03_training writes is one ComfyUI maps onto SDXL ("lora key not loaded": none),
for every network type (LoRA, LoCon, DoRA with its dora_scale, LoHa, LoKr).

The real-size SDXL base UNet and both text encoders are built on the meta device; adapters are added
with the training code (`add_adapters`) for each target-module set the profiles use, with and without
text encoders. Meta tensors cannot be written, so the PEFT state dict is materialised as zeros of the
real shapes, then written by the product's kohya writer (`to_kohya` via `save_kohya`). ComfyUI's own
`model_lora_keys_unet` / `model_lora_keys_clip` + `load_lora` run in ComfyUI's venv on those keys.
"""

from __future__ import annotations

import json
import subprocess
import types
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml

from pistachio_nb.paths import repo_root
from pistachio_nb.training.export import KOHYA_PREFIX, save_kohya
from pistachio_nb.training.sdxl import add_adapters
from pistachio_testkit import real_comfyui

from .sdxl_base import CLIP_G, CLIP_L, UNET

pytestmark = pytest.mark.comfyui_real
SCRIPT = Path(__file__).with_name("comfy_lora_keys.py")


def profile_targets(profile: str) -> tuple[list[str], int]:
    """`03_training.target_modules` and `rank` of a params profile."""
    section = yaml.safe_load((repo_root() / "params" / f"{profile}.yaml").read_text())["03_training"]
    return section["target_modules"], section["rank"]


def meta_sdxl() -> types.SimpleNamespace:
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    with init_empty_weights():
        return types.SimpleNamespace(unet=UNet2DConditionModel.from_config(UNET),
                                     text_encoder=CLIPTextModel(CLIPTextConfig(**CLIP_L)),
                                     text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_G)))


def zero_states(pipe) -> dict[str, dict[str, torch.Tensor]]:
    """`lora_state_dicts` for meta modules: the same PEFT keys, as zeros of the real shapes (fp16)."""
    from peft.utils import get_peft_model_state_dict

    return {name: {k: torch.zeros(v.shape, dtype=torch.float16) for k, v in get_peft_model_state_dict(getattr(pipe, name)).items()}
            for name in KOHYA_PREFIX if getattr(getattr(pipe, name), "peft_config", None)}


@pytest.fixture(scope="module")
def unet_shapes(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sdxl") / "unet-shapes.json"
    path.write_text(json.dumps({k: list(v.shape) for k, v in meta_sdxl().unet.state_dict().items()}))
    return path


def zero_base(pipe, states) -> dict[str, dict[str, torch.Tensor]]:
    """`base_weights` for meta modules: zeros of each DoRA layer's frozen weight shape (only the keys matter here)."""
    return {name: {k[: -len(".lora_magnitude_vector")]: torch.zeros(getattr(pipe, name).get_submodule(
                k[: -len(".lora_magnitude_vector")]).get_base_layer().weight.shape) for k in state if k.endswith("magnitude_vector")}
            for name, state in states.items()}  # fmt: skip


KEYS_PER_MODULE = {"lora": {3}, "locon": {3}, "dora": {4}, "loha": {5}, "lokr": {3, 4, 5}}  # with .alpha


@pytest.mark.parametrize("profile,text_encoders,network_type", [
    ("pod", False, "lora"), ("pod", True, "lora"), ("demo", False, "locon"), ("pod", True, "dora"),
    ("demo", False, "dora"), ("demo", True, "loha"), ("demo", True, "lokr")])  # fmt: skip
def test_comfyui_maps_every_exported_key(profile, text_encoders, network_type, unet_shapes, comfy_install, tmp_path):
    targets, rank = profile_targets(profile)
    pipe = meta_sdxl()
    add_adapters(pipe, rank, float(rank), targets, text_encoders, network_type)
    states = zero_states(pipe)
    lora = save_kohya(tmp_path / "lora.safetensors", states, rank, float(rank), torch.float16, {"network_dim": rank},
                      zero_base(pipe, states))  # fmt: skip
    run = subprocess.run([str(comfy_install), str(SCRIPT), str(real_comfyui.comfy_source()), str(unet_shapes), str(lora)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    keys = states_keys(lora)
    modules = Counter(k.split(".", 1)[0] for k in keys)  # kohya module names have no dots
    print(f"\n{profile} {network_type} text_encoders={text_encoders}: {answer['keys'] - len(answer['not_loaded'])}/"
          f"{answer['keys']} keys mapped, {answer['patched_modules']} modules patched on {answer['model']}")
    assert answer["model"] == "SDXL" and answer["not_loaded"] == [], answer["not_loaded"][:20]
    assert answer["patched_modules"] == len(modules) and answer["keys"] == len(keys)
    assert set(modules.values()) <= KEYS_PER_MODULE[network_type]
    assert any(m.startswith("lora_te") for m in modules) == text_encoders
    if network_type == "dora":
        assert sum(k.endswith(".dora_scale") for k in keys) == len(modules)


def states_keys(path: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return list(f.keys())
