"""Merge a kohya LoRA into a single-file SDXL checkpoint (ComfyUI / A1111 layout), for users who want one file.

W' = W + scale * up @ down * alpha / rank on every module the LoRA adapts. Kohya names are found in the
checkpoint's layout: the UNet (`model.diffusion_model.*`, LDM block names; our files name the diffusers
modules, kohya's sd-scripts the LDM ones: both are accepted), CLIP-L (`conditioner.embedders.0.transformer.*`,
Hugging Face names) and OpenCLIP bigG (`conditioner.embedders.1.model.*`, q/k/v stacked in `in_proj_weight`).
The UNet renaming follows diffusers' single_file_utils and ComfyUI's unet_to_diffusers (read, not copied).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import InputDataError
from ..files import atomic_path
from .lora_tools import KohyaLora, refuse_overwrite, read_kohya

UNET, TE1, TE2 = "model.diffusion_model.", "conditioner.embedders.0.transformer.", "conditioner.embedders.1.model."
FIXED = {"time_embed.0": "time_embedding.linear_1", "time_embed.2": "time_embedding.linear_2",
         "label_emb.0.0": "add_embedding.linear_1", "label_emb.0.2": "add_embedding.linear_2",
         "input_blocks.0.0": "conv_in", "out.0": "conv_norm_out", "out.2": "conv_out",
         "middle_block.0": "mid_block.resnets.0", "middle_block.1": "mid_block.attentions.0",
         "middle_block.2": "mid_block.resnets.1"}  # fmt: skip
RESNET = {"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj", "out_layers.0": "norm2",
          "out_layers.3": "conv2", "skip_connection": "conv_shortcut"}  # fmt: skip
BLOCK = re.compile(r"(input_blocks|output_blocks)\.(\d+)\.(\d+)\.(.+)")
OPENCLIP = {"attn.out_proj": "self_attn.out_proj", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
QKV = ("q_proj", "k_proj", "v_proj")


def _resnet_part(rest: str) -> str:
    head = next((k for k in RESNET if rest == k or rest.startswith(k + ".")), None)
    return RESNET[head] + rest[len(head) :] if head else rest


def diffusers_unet_path(ldm: str, layers: int) -> str:
    """The diffusers module path of an LDM UNet module path, for `layers` res blocks per level (SDXL: 2)."""
    for old, new in FIXED.items():
        if ldm == old or ldm.startswith(old + "."):
            rest = ldm[len(old) :]
            return new + (("." + _resnet_part(rest[1:])) if rest and "resnets" in new else rest)
    match = BLOCK.fullmatch(ldm)
    if not match:
        return ldm
    kind, i, part, rest = match[1], int(match[2]), int(match[3]), match[4]
    if kind == "input_blocks":
        level, j = divmod(i - 1, layers + 1)
        if rest.startswith("op"):
            return f"down_blocks.{level}.downsamplers.0.conv{rest[2:]}"
        return f"down_blocks.{level}.{'resnets' if part == 0 else 'attentions'}.{j}." + (_resnet_part(rest) if part == 0 else rest)
    level, j = divmod(i, layers + 1)
    if part > 0 and rest.startswith("conv"):
        return f"up_blocks.{level}.upsamplers.0.conv{rest[4:]}"
    return f"up_blocks.{level}.{'resnets' if part == 0 else 'attentions'}.{j}." + (_resnet_part(rest) if part == 0 else rest)


def res_blocks_per_level(keys) -> int:
    """Res blocks per UNet level, from where the first downsampler sits (input_blocks.<layers + 1>.0.op)."""
    ops = [int(m[1]) for k in keys if (m := re.match(re.escape(UNET) + r"input_blocks\.(\d+)\.0\.op\.", k))]
    if not ops:
        raise InputDataError("the checkpoint's UNet has no downsampler (input_blocks.N.0.op)", fix="give an SDXL checkpoint")
    return min(ops) - 1


@dataclass(frozen=True)
class Target:
    """Where a LoRA module lands in the checkpoint: a weight key and, for OpenCLIP's q/k/v, its row block."""

    key: str
    block: int | None = None  # 0, 1, 2 = q, k, v rows of in_proj_weight


def _kohya(prefix: str, path: str) -> str:
    return f"{prefix}_{path.replace('.', '_')}"


def checkpoint_targets(keys) -> dict[str, Target]:
    """Kohya module name -> checkpoint weight, for every UNet and text-encoder weight of the checkpoint."""
    keys = list(keys)
    layers = res_blocks_per_level(keys)
    out: dict[str, Target] = {}
    for key in keys:
        if not key.endswith((".weight", "in_proj_weight")):
            continue
        if key.startswith(UNET):
            path = key[len(UNET) : -len(".weight")]
            out[_kohya("lora_unet", path)] = out[_kohya("lora_unet", diffusers_unet_path(path, layers))] = Target(key)
        elif key.startswith(TE1):
            path = key[len(TE1) : -len(".weight")]
            out[_kohya("lora_te1", path if path.startswith("text_model.") else "text_model." + path)] = Target(key)
        elif key.startswith(TE2 + "transformer.resblocks."):
            out.update(_openclip_targets(key))
    return out


def _openclip_targets(key: str) -> dict[str, Target]:
    """OpenCLIP resblock weights under the Hugging Face names our kohya files use (q/k/v as thirds of in_proj)."""
    layer, rest = key[len(TE2 + "transformer.resblocks.") :].split(".", 1)
    stem = f"lora_te2_text_model_encoder_layers_{layer}_"
    if rest == "attn.in_proj_weight":
        return {_kohya(stem + "self_attn", name): Target(key, block) for block, name in enumerate(QKV)}
    path = rest[: -len(".weight")]
    return {_kohya(stem[:-1], OPENCLIP[path]): Target(key)} if path in OPENCLIP else {}


@dataclass
class MergeResult:
    """What `merge_lora` wrote: the file and how many modules were merged per part of the model."""

    path: Path
    merged: dict[str, int]

    def table(self) -> list[dict]:
        return [{"part": part, "modules_merged": n} for part, n in self.merged.items()]


def apply_lora(checkpoint: dict[str, torch.Tensor], lora: KohyaLora, scale: float) -> dict[str, int]:
    """Add scale * dW of every LoRA module to its checkpoint weight in place; refuse modules it cannot place."""
    targets = checkpoint_targets(checkpoint)
    missing = sorted(n for n in lora.modules if n not in targets)
    if missing:
        raise InputDataError(f"{len(missing)} module(s) of {lora.path} are not in the checkpoint, e.g. {missing[0]}",
                             fix="merge a LoRA trained for this SDXL base model into that model's single-file checkpoint")  # fmt: skip
    merged: dict[str, int] = {}
    for name, module in lora.modules.items():
        target = targets[name]
        weight = checkpoint[target.key]
        rows = weight.shape[0] // 3 if target.block is not None else weight.shape[0]
        start = rows * (target.block or 0)
        part, delta = weight[start : start + rows], module.delta()
        if part.numel() != delta.numel():
            raise InputDataError(f"{name} of {lora.path} has shape {tuple(delta.shape)}, the checkpoint's "
                                 f"{target.key} {tuple(part.shape)}", fix="merge into the base model the LoRA was trained on")  # fmt: skip
        new = part.float() + scale * delta.reshape(part.shape)
        checkpoint[target.key] = torch.cat([weight[:start], new.to(weight.dtype), weight[start + rows :]])
        kind = name.split("_")[1]
        merged[kind] = merged.get(kind, 0) + 1
    return merged


def merge_lora(base: str | Path, lora_file: str | Path, dest: str | Path, scale: float = 1.0) -> MergeResult:
    """Write `base` with the LoRA merged in at `scale` to `dest` (atomically; the inputs are never overwritten)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    base, dest = Path(base), Path(dest)
    lora = read_kohya(lora_file)
    refuse_overwrite(dest, base, lora.path)
    if not base.is_file():
        raise InputDataError(f"checkpoint {base} does not exist", fix="give a single-file SDXL checkpoint (.safetensors)")
    with safe_open(str(base), "pt") as f:
        metadata, checkpoint = f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys()}
    if not any(k.startswith(UNET) for k in checkpoint):
        raise InputDataError(f"{base} is not a single-file SDXL checkpoint (no {UNET}* keys)",
                             fix="give the ComfyUI/A1111 checkpoint file (models/checkpoints/*.safetensors)")  # fmt: skip
    merged = apply_lora(checkpoint, lora, scale)
    metadata = {**metadata, "pistachio_merged_lora": f"{lora.path.name} at scale {scale}"}
    with atomic_path(dest) as tmp:
        save_file({k: v.contiguous() for k, v in checkpoint.items()}, str(tmp), metadata=metadata)
    return MergeResult(dest, merged)
