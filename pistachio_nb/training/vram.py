"""Estimate GPU memory for a training config before loading any weights, and warn when it will not fit.

Parameter counts come from the model configs instantiated on the meta device (no weights read);
activation memory is scaled from a measured reference, so treat the total as +-25%. The same meta
models check the LoRA target names: an unknown one, or a plan with 0 LoRA parameters, is a ParamsError.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import pandas as pd
import torch

from ..errors import ParamsError

GB = 1024**3
BYTES = {"no": 4, "fp16": 2, "bf16": 2}
# Reference: SDXL UNet (2.57e9 params), 1024x1024, batch 1, fp16 autocast, activations kept for backward.
REF_UNET_PARAMS, REF_PIXELS = 2.567e9, 1024 * 1024
REF_ACTIVATION_GB = {False: 9.0, True: 2.5}  # without / with gradient checkpointing
OVERHEAD_GB = 0.6  # CUDA context, cuBLAS workspace, allocator fragmentation


@dataclass
class VramPlan:
    """The estimate as a table, the total, and the GPU it was compared with."""

    table: pd.DataFrame
    total_gb: float
    gpu_gb: float | None

    @property
    def fits(self) -> bool | None:
        return None if self.gpu_gb is None else self.total_gb <= self.gpu_gb

    @property
    def message(self) -> str:
        if self.gpu_gb is None:
            return f"estimated {self.total_gb:.2f} GB of GPU memory; no CUDA GPU here, training runs on the CPU"
        if self.fits:
            return f"estimated {self.total_gb:.2f} GB fits the GPU's {self.gpu_gb:.1f} GB"
        return (f"WARNING: estimated {self.total_gb:.2f} GB exceeds the GPU's {self.gpu_gb:.1f} GB: enable "
                "gradient_checkpointing / cache_latents / cache_text_embeddings, lower batch_size or rank, or use adamw8bit")  # fmt: skip


def meta_counts(resolved: str, rank: int, unet_targets: list[str], text_targets: list[str]) -> dict[str, int]:
    """Parameter counts of each component and of its LoRA adapters, from configs only."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import AutoConfig, CLIPTextModel, CLIPTextModelWithProjection

    with init_empty_weights():
        modules = {
            "unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(resolved, subfolder="unet")),
            "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(resolved, subfolder="vae")),
            "text_encoder": CLIPTextModel(AutoConfig.from_pretrained(resolved, subfolder="text_encoder")),
            "text_encoder_2": CLIPTextModelWithProjection(AutoConfig.from_pretrained(resolved, subfolder="text_encoder_2")),
        }  # fmt: skip
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in modules.items()}
    for name, targets, field in (("unet", unet_targets, "target_modules"),
                                 ("text_encoders", text_targets, "text-encoder LoRA targets (training.sdxl.TEXT_ENCODER_TARGETS)")):
        owners = [modules["unet"]] if name == "unet" else [modules["text_encoder"], modules["text_encoder_2"]]
        layers = [(path, layer) for owner in owners for path, layer in owner.named_modules()]
        check_targets(field, targets, layers)
        counts[f"lora_{name}"] = sum(lora_size(layer, rank) for path, layer in layers if _matches(path, targets))
    return counts


def _matches(path: str, targets: list[str]) -> bool:
    """PEFT's rule for a list of target_modules: the module path equals a target or ends in '.' + target."""
    return any(path == t or path.endswith("." + t) for t in targets)


def check_targets(field: str, targets: list[str], layers: list[tuple[str, torch.nn.Module]]) -> None:
    """Refuse targets that match no module, or only modules LoRA cannot adapt, naming close real names."""
    unknown = [t for t in targets if not any(_matches(path, [t]) for path, _ in layers)]
    if unknown:
        hints = []
        for t in unknown:
            depth = t.count(".") + 1
            names = sorted({".".join(path.split(".")[-depth:]) for path, _ in layers if path.count(".") + 1 >= depth})
            close = difflib.get_close_matches(t, names, n=3, cutoff=0.6)
            hints.append(f"{t!r} (did you mean {', '.join(map(repr, close))}?)" if close else repr(t))
        raise ParamsError(
            f"{field}: no module of the model is named {', '.join(hints)}",
            fix=f"use names of the model's Linear/Conv2d layers, e.g. 'to_q', 'to_k', 'to_v', 'to_out.0' in {field}",
        )
    unfit = [t for t in targets if not any(_matches(path, [t]) and lora_size(layer, 1) for path, layer in layers)]
    if unfit:
        raise ParamsError(
            f"{field}: {', '.join(map(repr, unfit))} name only modules that are neither Linear nor Conv2d (LoRA adapts those)",
            fix=f"name the layers inside them in {field}, e.g. 'to_q' instead of 'attn1', 'to_out.0' instead of 'to_out'",
        )


def lora_size(layer: torch.nn.Module, rank: int) -> int:
    """Parameters of a rank-`rank` LoRA on `layer`: down (in x kernel -> rank) plus up (rank -> out)."""
    if isinstance(layer, torch.nn.Linear):
        return rank * (layer.in_features + layer.out_features)
    if isinstance(layer, torch.nn.Conv2d):
        kh, kw = layer.kernel_size
        return rank * (layer.in_channels * kh * kw + layer.out_channels)
    return 0


def plan_vram(counts: dict[str, int], *, resolution: int, batch_size: int, mixed_precision: str,
              gradient_checkpointing: bool, cache_latents: bool, cache_text_embeddings: bool,
              train_text_encoder: bool, optimizer: str, gpu_gb: float | None) -> VramPlan:  # fmt: skip
    """The memory table for one config; `gpu_gb` None means no GPU to compare with."""
    wbytes = BYTES[mixed_precision]
    if counts["lora_unet"] == 0:
        raise ParamsError("target_modules: the VRAM plan counts 0 LoRA parameters in the UNet: there would be nothing to train",
                          fix="name the UNet's Linear/Conv2d layers in target_modules, e.g. 'to_q', 'to_k', 'to_v', 'to_out.0'")  # fmt: skip
    if train_text_encoder and counts["lora_text_encoders"] == 0:
        raise ParamsError("train_text_encoder: the VRAM plan counts 0 LoRA parameters in the text encoders",
                          fix="set train_text_encoder: false, or fix training.sdxl.TEXT_ENCODER_TARGETS")  # fmt: skip
    lora = counts["lora_unet"] + (counts["lora_text_encoders"] if train_text_encoder else 0)
    state_bytes = 2 if optimizer == "adamw8bit" else 8  # two moments, 1 or 4 bytes each
    act_scale = batch_size * resolution**2 / REF_PIXELS * counts["unet"] / REF_UNET_PARAMS
    text = counts["text_encoder"] + counts["text_encoder_2"]
    rows = [
        ("UNet weights (frozen)", counts["unet"] * wbytes, f"{counts['unet']:,} params x {wbytes} B"),
        ("text encoders", 0 if cache_text_embeddings else text * wbytes,
         "freed: embeddings cached" if cache_text_embeddings else f"{text:,} params x {wbytes} B"),
        ("VAE (fp32)", 0 if cache_latents else counts["vae"] * 4,
         "freed: latents cached" if cache_latents else f"{counts['vae']:,} params x 4 B"),
        ("LoRA weights + grads (fp32)", lora * 8, f"{lora:,} params x (4 + 4) B"),
        ("optimizer state", lora * state_bytes, f"{optimizer}: {state_bytes} B per LoRA param"),
        ("activations", REF_ACTIVATION_GB[gradient_checkpointing] * act_scale * GB * (wbytes / 2),
         f"{REF_ACTIVATION_GB[gradient_checkpointing]} GB at SDXL 1024px batch 1 fp16, scaled by batch x pixels x UNet size"),
        ("overhead", OVERHEAD_GB * GB, "CUDA context, workspaces, fragmentation"),
    ]  # fmt: skip
    table = pd.DataFrame([(n, round(b / GB, 3), why) for n, b, why in rows], columns=["component", "GB", "assumption"])
    total = float(table["GB"].sum())
    table.loc[len(table)] = ["total", round(total, 3), "estimate, +-25%"]
    return VramPlan(table, total, gpu_gb)


def gpu_memory_gb() -> float | None:
    """Total memory of the first CUDA GPU, None without one."""
    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(0).total_memory / GB
