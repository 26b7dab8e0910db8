"""The `/object_info` the imitation serves: the real ComfyUI 0.3.64 entries of the core node classes we use.

`comfy_object_info.json` was recorded from the real server (see docs/comfyui-imitation.md); model and
input-image combos are filled from the imitation's own files, so a missing checkpoint fails as on a pod.
"""

from __future__ import annotations

import copy
import json
import mimetypes
from functools import cache
from pathlib import Path
from typing import Any

RECORDED = Path(__file__).with_name("comfy_object_info.json")
# (node class, input) -> the model folder whose files are its choices
MODEL_COMBOS = {("CheckpointLoaderSimple", "ckpt_name"): "checkpoints", ("LoraLoader", "lora_name"): "loras",
               ("UNETLoader", "unet_name"): "diffusion_models", ("CLIPLoader", "clip_name"): "text_encoders",
               ("VAELoader", "vae_name"): "vae"}
# choices ComfyUI appends after the files (nodes.py VAELoader.vae_list; its taesd entries need vae_approx files)
EXTRA_CHOICES = {("VAELoader", "vae_name"): ["pixel_space"]}


@cache
def recorded() -> dict[str, Any]:
    return json.loads(RECORDED.read_text())


def input_images(input_dir: Path) -> list[str]:
    """LoadImage's choices as ComfyUI lists them: top-level files of `input/` whose type is an image."""
    files = [p.name for p in input_dir.iterdir() if p.is_file()] if input_dir.is_dir() else []
    return sorted(f for f in files if (mimetypes.guess_type(f)[0] or "").startswith("image/"))


def object_info(models: dict[str, list[str]], input_files: list[str]) -> dict[str, Any]:
    """Node class -> its object_info entry, with model and input-image combos filled from the server's files."""
    info = copy.deepcopy(recorded())
    for (cls, name), folder in MODEL_COMBOS.items():
        info[cls]["input"]["required"][name][0] = sorted(models.get(folder, [])) + EXTRA_CHOICES.get((cls, name), [])
    info["LoadImage"]["input"]["required"]["image"][0] = sorted(input_files)
    return info
