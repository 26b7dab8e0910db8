"""LoRA files users load elsewhere: kohya `.safetensors` (ComfyUI, A1111, civitai) and diffusers format.

Kohya keys are `lora_unet_<module path with _>.lora_down.weight` / `.lora_up.weight` / `.alpha`
(`lora_te1_` / `lora_te2_` for the text encoders), with `ss_*` training metadata. Written here
rather than with diffusers' `convert_state_dict_to_kohya`, which (measured, diffusers 0.42) only
adds `lora_unet_` to keys starting with `unet.` and writes alpha = rank whatever alpha was trained.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import StableDiffusionXLPipeline
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file

from ..dirs import atomic_dir
from ..files import atomic_path

KOHYA_PREFIX = {"unet": "lora_unet", "text_encoder": "lora_te1", "text_encoder_2": "lora_te2"}
DIFFUSERS_WEIGHTS = "pytorch_lora_weights.safetensors"


def lora_state_dicts(pipe) -> dict[str, dict[str, torch.Tensor]]:
    """PEFT LoRA weights per component that has an adapter (`<module>.lora_A.weight` keys)."""
    out = {}
    for name in KOHYA_PREFIX:
        module = getattr(pipe, name)
        if getattr(module, "peft_config", None):
            out[name] = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(module).items()}
    return out


def to_kohya(states: dict[str, dict[str, torch.Tensor]], alpha: float, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """PEFT state dicts -> one kohya state dict, with the trained alpha on every module."""
    out: dict[str, torch.Tensor] = {}
    for component, state in states.items():
        for key, tensor in state.items():
            module, kind = key.rsplit(".lora_", 1)  # kind: "A.weight" | "B.weight"
            if component != "unet" and not module.startswith("text_model."):
                module = "text_model." + module  # transformers 5 CLIPTextModel dropped the wrapper kohya names
            name = f"{KOHYA_PREFIX[component]}_{module.replace('.', '_')}"
            out[f"{name}.lora_{'down' if kind.startswith('A') else 'up'}.weight"] = tensor.to(dtype)
            out[f"{name}.alpha"] = torch.tensor(float(alpha), dtype=dtype)
    return out


def kohya_metadata(info: dict) -> dict[str, str]:
    """`ss_*` metadata (all strings, as safetensors requires); dicts and lists become JSON."""
    return {f"ss_{k}": v if isinstance(v, str) else json.dumps(v) for k, v in info.items()}


def save_kohya(dest: Path, states: dict, alpha: float, dtype: torch.dtype, info: dict) -> Path:
    """Write the kohya LoRA file atomically (temp then rename)."""
    with atomic_path(dest) as tmp:
        save_file(to_kohya(states, alpha, dtype), tmp, metadata=kohya_metadata(info))
    return dest


def save_diffusers(dest: Path, states: dict, adapter_configs: dict[str, dict], dtype: torch.dtype) -> Path:
    """Write the diffusers-format folder (with each adapter's LoRA config, so alpha survives) atomically."""
    # PEFT key names as they are: diffusers' convert_state_dict_to_diffusers renames linear adapters
    # but not conv ones, and its loader then drops the renamed half of such a mixed file (0.42).
    layers = {f"{name}_lora_layers": {k: v.to(dtype) for k, v in s.items()} for name, s in states.items()}
    metadata = {f"{name}_lora_adapter_metadata": adapter_configs[name] for name in states}
    with atomic_dir(dest) as tmp:
        StableDiffusionXLPipeline.save_lora_weights(tmp, weight_name=DIFFUSERS_WEIGHTS, **layers, **metadata)
    return dest


def adapter_configs(pipe) -> dict[str, dict]:
    """The PEFT LoRA config (rank, alpha, targets) of every component with an adapter, JSON-ready."""
    out = {}
    for name in KOHYA_PREFIX:
        config = getattr(getattr(pipe, name), "peft_config", {}).get("default")
        if config is not None:
            out[name] = {k: (sorted(v) if isinstance(v, set) else v) for k, v in config.to_dict().items()}
    return out
