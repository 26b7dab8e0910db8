"""The demo profile's model files: tiny, byte-for-byte deterministic LoRA files that `services.model_files`
serves over HTTP on 127.0.0.1, so `ensure_models` runs its real download / resume / sha256 path offline.

The bytes never change (fixed values, one metadata key, safetensors' sorted layout), which is what
lets `params/models-demo.yaml` carry their sha256 like a real manifest does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import save

from pistachio_nb.files import write_bytes
from pistachio_nb.paths import resolve

# kohya-format LoRA for one SDXL attention projection, rank `rank`.
_LAYER = "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q"


def demo_lora_bytes(rank: int, width: int = 64) -> bytes:
    """A rank-`rank` kohya LoRA for one layer: fixed values, so the bytes (and sha256) are stable."""
    down = np.linspace(-0.05, 0.05, rank * width, dtype=np.float32).reshape(rank, width)
    up = np.linspace(0.02, -0.02, width * rank, dtype=np.float32).reshape(width, rank)
    tensors = {f"{_LAYER}.lora_down.weight": down, f"{_LAYER}.lora_up.weight": up,
               f"{_LAYER}.alpha": np.array(float(rank), dtype=np.float32)}
    return save(tensors, metadata={"ss_network_dim": str(rank)})  # one key: safetensors orders several at random


DEMO_FILES = {"demo_style_rank1.safetensors": lambda: demo_lora_bytes(1),
              "demo_detail_rank4.safetensors": lambda: demo_lora_bytes(4, width=256)}


def write_demo_files(folder: str | Path) -> list[Path]:
    """Write the demo model files into `folder` (atomically; same bytes every time)."""
    folder = resolve(folder)
    return [write_bytes(folder / name, make()) for name, make in DEMO_FILES.items()]
