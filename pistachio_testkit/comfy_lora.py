"""The imitation's LoraLoader: read a LoRA file's keys, name those ComfyUI would log as "lora key not loaded".

Real ComfyUI matches each key against the loaded model's weights (`comfy.lora.model_lora_keys_unet/clip`);
the imitation has no model, so a key counts as known when it has the kohya form ComfyUI maps for SDXL
(`lora_unet_<down_blocks|mid_block|up_blocks|input_blocks|middle_block|output_blocks>_...` or
`lora_te1_/lora_te2_text_model_...`, each with a suffix one of ComfyUI's weight adapters reads: LoRA/LoCon,
LoHa, LoKr, OFT, GLoRA, `alpha`, `dora_scale`). Differences,
on purpose: a module name of that form that SDXL lacks passes here, a wrong shape is not detected (the real
server logs `ERROR lora <key> shape '[..]' is invalid` when it patches), and an empty stand-in file (the
protocol tests' `character.safetensors`) loads as a LoRA without keys instead of failing to parse.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

SUFFIXES = ("lora_down.weight", "lora_up.weight", "lora_mid.weight", "alpha", "dora_scale", "hada_w1_a", "hada_w1_b",
            "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2", "lokr_w1", "lokr_w2", "lokr_w1_a", "lokr_w1_b", "lokr_w2_a",
            "lokr_w2_b", "lokr_t2", "oft_blocks", "rescale", "a1.weight", "a2.weight", "b1.weight", "b2.weight")  # comfy/weight_adapter
KNOWN_KEY = re.compile(r"^(lora_unet_(down_blocks|mid_block|up_blocks|input_blocks|middle_block|output_blocks)_\w+"
                       r"|lora_te[12]_text_model_\w+)\.(" + "|".join(re.escape(s) for s in SUFFIXES) + ")$")


@dataclass(frozen=True)
class LoraEffect:
    """What one LoraLoader does: `digest` of the change it makes (None: a no-op) and the keys it does not load."""

    digest: str | None
    not_loaded: tuple[str, ...] = ()


def lora_keys(path: Path) -> list[str]:
    """The tensor names of a .safetensors file (its JSON header); an empty file has none."""
    if path.stat().st_size == 0:
        return []
    from safetensors import safe_open

    with safe_open(str(path), "np") as f:
        return list(f.keys())


def lora_effect(path: Path, strength_model: float, strength_clip: float) -> LoraEffect:
    """As ComfyUI's LoraLoader: both strengths 0 returns the inputs untouched without reading the file."""
    if strength_model == 0 and strength_clip == 0:
        return LoraEffect(None)
    keys = lora_keys(path)
    not_loaded = tuple(k for k in keys if not KNOWN_KEY.match(k))
    if len(not_loaded) == len(keys):
        return LoraEffect(None, not_loaded)
    digest = hashlib.sha256(path.read_bytes() + f"{strength_model}/{strength_clip}".encode()).hexdigest()
    return LoraEffect(digest, not_loaded)
