"""LoRA files users load elsewhere: kohya `.safetensors` (ComfyUI, A1111, civitai) and diffusers format.

Kohya keys are `lora_unet_<module path with _>.lora_down.weight` / `.lora_up.weight` / `.alpha`
(`lora_te1_` / `lora_te2_` for the text encoders), with `ss_*` training metadata; DoRA adds
`.dora_scale`, LoHa `.hada_w1_a` ... `.hada_w2_b`, LoKr `.lokr_w1` / `.lokr_w2[_a|_b]` (the LyCORIS
names ComfyUI's comfy/weight_adapter reads). Written here
rather than with diffusers' `convert_state_dict_to_kohya`, which (measured, diffusers 0.42) only
adds `lora_unet_` to keys starting with `unet.` and writes alpha = rank whatever alpha was trained.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from diffusers import StableDiffusionXLPipeline
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file

from ..dirs import atomic_dir
from ..files import atomic_path

KOHYA_PREFIX = {"unet": "lora_unet", "text_encoder": "lora_te1", "text_encoder_2": "lora_te2"}
DIFFUSERS_WEIGHTS = "pytorch_lora_weights.safetensors"
MAGNITUDE = "lora_magnitude_vector"  # PEFT's DoRA magnitude
PEFT_KEY = re.compile(r"(.+)\.(lora_[AB]\.weight|lora_magnitude_vector|hada_w[12]_[ab]|lokr_w[12](?:_[ab])?)")
KOHYA_NAMES = {"lora_A.weight": "lora_down.weight", "lora_B.weight": "lora_up.weight", MAGNITUDE: "dora_scale"}
DIFFUSERS_LOADS = ("lora", "locon", "dora")  # network types diffusers 0.42 loads back; LoHa/LoKr export kohya only


def lora_state_dicts(pipe) -> dict[str, dict[str, torch.Tensor]]:
    """PEFT LoRA weights per component that has an adapter (`<module>.lora_A.weight` keys)."""
    out = {}
    for name in KOHYA_PREFIX:
        module = getattr(pipe, name)
        if getattr(module, "peft_config", None):
            out[name] = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(module).items()}
    return out


def base_weights(pipe, states: dict[str, dict[str, torch.Tensor]]) -> dict[str, dict[str, torch.Tensor]]:
    """The frozen weight of every DoRA-adapted layer (its `dora_scale` export depends on it), per component."""
    out: dict[str, dict[str, torch.Tensor]] = {}
    for component, state in states.items():
        for key in state:
            if key.endswith(MAGNITUDE):
                path = key[: -len(MAGNITUDE) - 1]
                layer = getattr(pipe, component).get_submodule(path).get_base_layer()
                out.setdefault(component, {})[path] = layer.weight.detach().cpu()
    return out


def comfy_dora_scale(magnitude: torch.Tensor, weight: torch.Tensor, down: torch.Tensor, up: torch.Tensor,
                     scale: float) -> torch.Tensor:  # fmt: skip
    """PEFT's DoRA magnitude m as the `dora_scale` ComfyUI 0.3.64 applies exactly.

    PEFT merges to m * (W + dW) / ||W + dW|| (row norms); ComfyUI's `weight_decompose`
    (comfy/weight_adapter/base.py) to (W + dW) * dora_scale / ||W|| when dora_scale has one row per
    output, so dora_scale = m * ||W|| / ||W + dW||, shaped (out, 1[, 1, 1]). Loaders that divide by
    ||W + dW|| instead (LyCORIS) see a change of the order of ||dW|| / ||W||."""
    w, out = weight.float(), weight.shape[0]
    merged = w + scale * (up.flatten(1).float() @ down.flatten(1).float()).view(w.shape)
    eps = torch.finfo(torch.float32).eps  # ComfyUI adds its weight dtype's eps to ||W||
    rows = lambda x: x.reshape(out, -1).norm(dim=1)  # noqa: E731
    m = magnitude.float().reshape(out)
    return (m * (rows(w) + eps) / (rows(merged) + eps)).reshape(out, *[1] * (w.dim() - 1))


def _kohya_module(component: str, module: str) -> str:
    if component != "unet" and not module.startswith("text_model."):
        module = "text_model." + module  # transformers 5 CLIPTextModel dropped the wrapper kohya names
    return f"{KOHYA_PREFIX[component]}_{module.replace('.', '_')}"


def to_kohya(states: dict[str, dict[str, torch.Tensor]], rank: int, alpha: float, dtype: torch.dtype,
             base: dict[str, dict[str, torch.Tensor]] | None = None) -> dict[str, torch.Tensor]:  # fmt: skip
    """PEFT state dicts (LoRA, DoRA, LoHa, LoKr) -> one kohya/LyCORIS state dict as ComfyUI loads it,
    with the trained alpha on every module. `base`: the frozen weights DoRA's export needs (`base_weights`)."""
    out: dict[str, torch.Tensor] = {}
    scale = alpha / rank
    for component, state in states.items():
        modules: dict[str, dict[str, torch.Tensor]] = {}
        for key, tensor in state.items():
            module, kind = PEFT_KEY.fullmatch(key).groups()
            modules.setdefault(module, {})[kind] = tensor
        for module, parts in modules.items():
            name = _kohya_module(component, module)
            if MAGNITUDE in parts:
                parts[MAGNITUDE] = comfy_dora_scale(parts[MAGNITUDE], base[component][module], parts["lora_A.weight"],
                                                    parts["lora_B.weight"], scale)  # fmt: skip
            if "lokr_w2" in parts and "lokr_w1_b" not in parts:  # no low-rank factor: ComfyUI applies no alpha/rank
                parts["lokr_w2"] = parts["lokr_w2"] * scale
            for kind, tensor in parts.items():
                out[f"{name}.{KOHYA_NAMES.get(kind, kind)}"] = tensor.to(dtype)
            out[f"{name}.alpha"] = torch.tensor(float(alpha), dtype=dtype)
    return out


def network_info(network_type: str) -> dict:
    """kohya's `ss_network_module` / `ss_network_args` for a network type (LyCORIS types as LyCORIS writes them)."""
    if network_type in ("lora", "locon"):
        return {"network_module": "networks.lora"}
    if network_type == "dora":
        return {"network_module": "networks.lora", "network_args": {"dora_wd": "True"}}
    return {"network_module": "lycoris.kohya", "network_args": {"algo": network_type}}


def kohya_metadata(info: dict) -> dict[str, str]:
    """`ss_*` metadata (all strings, as safetensors requires); dicts and lists become JSON."""
    return {f"ss_{k}": v if isinstance(v, str) else json.dumps(v) for k, v in info.items()}


def save_kohya(dest: Path, states: dict, rank: int, alpha: float, dtype: torch.dtype, info: dict,
               base: dict | None = None) -> Path:  # fmt: skip
    """Write the kohya LoRA file atomically (temp then rename)."""
    with atomic_path(dest) as tmp:
        save_file(to_kohya(states, rank, alpha, dtype, base), tmp, metadata=kohya_metadata(info))
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
