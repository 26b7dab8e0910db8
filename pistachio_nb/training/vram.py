"""Estimate GPU memory for a training config before loading any weights, and warn when it will not fit.

Parameter counts come from the model configs instantiated on the meta device (no weights read). The
VAE and text encoders are counted even when their outputs are cached: the pipeline keeps them on the
GPU to draw checkpoint samples. The activation constants are uncalibrated (no GPU measurement backs
them; docs/vram.md gives the published figures they should be read against). The same meta
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
REF_ACTIVATION_GB = {False: 9.0, True: 2.5}  # without / with gradient checkpointing: UNCALIBRATED, see docs/vram.md
_RESIDENT = "; cached, but kept on the GPU for checkpoint samples"
ADAPTABLE = (torch.nn.Linear, torch.nn.Conv2d)  # the layer kinds every network type adapts
# optimizer state per trained parameter: AdamW/schedule-free two fp32 buffers, 8-bit AdamW two uint8 moments,
# Prodigy four (exp_avg, exp_avg_sq, s, p0), Adafactor without beta1 only factored row/column second moments
OPTIMIZER_STATE_BYTES = {"adamw": 8, "adamw8bit": 2, "prodigy": 16, "schedulefree_adamw": 8, "adafactor": 0}
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


def meta_counts(resolved: str, rank: int, unet_targets: list[str], text_targets: list[str],
                network_type: str) -> dict[str, int]:  # fmt: skip
    """Parameter counts of each component and of its adapters (PEFT's own, added on the meta device), from configs only."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import AutoConfig, CLIPTextModel, CLIPTextModelWithProjection

    from .sdxl import adapter_config

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
            if name == "unet":
                check_network_type(network_type, targets, layers)
            for owner in owners:
                owner.add_adapter(adapter_config(network_type, rank, float(rank), targets))
            counts[f"lora_{name}"] = sum(p.numel() for owner in owners for p in owner.parameters() if p.requires_grad)
    return counts


def check_network_type(network_type: str, targets: list[str], layers: list[tuple[str, torch.nn.Module]]) -> None:
    """kohya's naming: LoRA adapts Linear layers, LoCon also convolutions; refuse a target list that says otherwise."""
    convs = sorted({t for t in targets for path, layer in layers if _matches(path, [t]) and isinstance(layer, torch.nn.Conv2d)})
    if network_type == "lora" and convs:
        raise ParamsError(f"target_modules {convs} are Conv2d layers, which network_type 'lora' does not adapt",
                          fix="set network_type: 'locon' (LoRA on convolutions too), or drop those targets")  # fmt: skip
    if network_type == "locon" and not convs:
        raise ParamsError("network_type 'locon' with no Conv2d layer in target_modules is plain LoRA",
                          fix="add convolutions to target_modules (e.g. 'conv1', 'conv2') or set network_type: 'lora'")  # fmt: skip


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
    unfit = [t for t in targets if not any(_matches(path, [t]) and isinstance(layer, ADAPTABLE) for path, layer in layers)]
    if unfit:
        raise ParamsError(
            f"{field}: {', '.join(map(repr, unfit))} name only modules that are neither Linear nor Conv2d (LoRA adapts those)",
            fix=f"name the layers inside them in {field}, e.g. 'to_q' instead of 'attn1', 'to_out.0' instead of 'to_out'",
        )


def plan_vram(counts: dict[str, int], *, resolution: int, batch_size: int, mixed_precision: str,
              gradient_checkpointing: bool, cache_latents: bool, cache_text_embeddings: bool,
              train_text_encoder: bool, optimizer: str, gpu_gb: float | None, ema_on_gpu: bool = False) -> VramPlan:  # fmt: skip
    """The memory table for one config; `gpu_gb` None means no GPU to compare with; `ema_on_gpu` counts an fp32
    EMA copy of the adapter beside it (ema_device: device; on the CPU it costs no GPU memory)."""
    wbytes = BYTES[mixed_precision]
    if counts["lora_unet"] == 0:
        raise ParamsError("target_modules: the VRAM plan counts 0 LoRA parameters in the UNet: there would be nothing to train",
                          fix="name the UNet's Linear/Conv2d layers in target_modules, e.g. 'to_q', 'to_k', 'to_v', 'to_out.0'")  # fmt: skip
    if train_text_encoder and counts["lora_text_encoders"] == 0:
        raise ParamsError("train_text_encoder: the VRAM plan counts 0 LoRA parameters in the text encoders",
                          fix="set train_text_encoder: false, or fix training.sdxl.TEXT_ENCODER_TARGETS")  # fmt: skip
    lora = counts["lora_unet"] + (counts["lora_text_encoders"] if train_text_encoder else 0)
    state_bytes = OPTIMIZER_STATE_BYTES[optimizer]
    act_scale = batch_size * resolution**2 / REF_PIXELS * counts["unet"] / REF_UNET_PARAMS
    text = counts["text_encoder"] + counts["text_encoder_2"]
    rows = [
        ("UNet weights (frozen)", counts["unet"] * wbytes, f"{counts['unet']:,} params x {wbytes} B"),
        ("text encoders", text * wbytes, f"{text:,} params x {wbytes} B" + _RESIDENT * cache_text_embeddings),
        ("VAE (fp32)", counts["vae"] * 4, f"{counts['vae']:,} params x 4 B" + _RESIDENT * cache_latents),
        ("LoRA weights + grads (fp32)", lora * 8, f"{lora:,} params x (4 + 4) B"),
        ("optimizer state", lora * state_bytes, f"{optimizer}: {state_bytes} B per LoRA param"),
        *([("EMA copy (fp32)", lora * 4, f"{lora:,} params x 4 B (ema_device: device)")] if ema_on_gpu else []),
        ("activations", REF_ACTIVATION_GB[gradient_checkpointing] * act_scale * GB * (wbytes / 2),
         f"{REF_ACTIVATION_GB[gradient_checkpointing]} GB at SDXL 1024px batch 1 fp16, scaled by batch x pixels x UNet size"),
        ("overhead", OVERHEAD_GB * GB, "CUDA context, workspaces, fragmentation"),
    ]  # fmt: skip
    table = pd.DataFrame([(n, round(b / GB, 3), why) for n, b, why in rows], columns=["component", "GB", "assumption"])
    total = float(table["GB"].sum())
    table.loc[len(table)] = ["total", round(total, 3), "uncalibrated estimate (docs/vram.md)"]
    return VramPlan(table, total, gpu_gb)


def gpu_memory_gb() -> float | None:
    """Total memory of the first CUDA GPU, None without one."""
    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(0).total_memory / GB
