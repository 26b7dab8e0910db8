"""The checkpoint x prompt x seed (x LoRA scale) image grid, generated with fixed seeds and cached on disk.

Each image's file name is a hash of everything that determines it (LoRA file content, prompt, seed,
scale, sampler settings), so a rerun only fills gaps and a retrained checkpoint is regenerated.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..files import atomic_path
from ..lora import load_lora, set_lora_scale
from ..models import load_sdxl_pipeline
from .inputs import Checkpoint


@dataclass(frozen=True)
class SamplerSettings:
    """What, besides checkpoint / prompt / seed / scale, decides an image."""

    base_model: str
    width: int
    height: int
    steps: int
    guidance_scale: float
    negative_prompt: str


def file_digest(path: Path) -> str:
    """sha256 of a file, streamed (checkpoints are hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def plan_grid(checkpoints: list[Checkpoint], prompts: pd.DataFrame, seeds: list[int], scales: list[float],
              settings: SamplerSettings, image_dir: Path) -> pd.DataFrame:
    """One row per image to have: checkpoint, step, scale, prompt, seed and its cache `file`."""
    rows = []
    for ckpt in checkpoints:
        digest = "" if ckpt.is_base else file_digest(ckpt.path)
        for scale in [0.0] if ckpt.is_base else scales:
            for prompt in prompts.itertuples():
                for seed in seeds:
                    what = {"lora": digest, "scale": scale, "prompt": prompt.prompt, "seed": seed, **asdict(settings)}
                    key = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:20]
                    rows.append({"checkpoint": ckpt.name, "step": ckpt.step, "path": ckpt.path, "scale": scale,
                                 "prompt_id": prompt.prompt_id, "prompt": prompt.prompt, "seed": seed,
                                 "file": image_dir / f"{key}.png"})
    return pd.DataFrame(rows)


def _generate_one(pipe, row, settings: SamplerSettings):
    generator = torch.Generator("cpu").manual_seed(int(row.seed))  # CPU generator: same noise on any device
    return pipe(prompt=row.prompt, negative_prompt=settings.negative_prompt or None, width=settings.width,
                height=settings.height, num_inference_steps=settings.steps, guidance_scale=settings.guidance_scale,
                generator=generator).images[0]


def generate_grid(plan: pd.DataFrame, settings: SamplerSettings, device: str | None = None) -> pd.DataFrame:
    """Generate every planned image whose file is missing; returns `plan` with a `cached` column.

    The pipeline loads only if something is missing; each LoRA is loaded once, as a named adapter
    whose weight is the LoRA scale, and removed before the next one.
    """
    todo = plan[[not Path(f).is_file() for f in plan["file"]]]
    if len(todo):
        pipe = load_sdxl_pipeline(settings.base_model, device)
        bar = tqdm(total=len(todo), desc="generating")
        for path, group in todo.groupby("path", dropna=False, sort=False):
            adapter = None if pd.isna(path) else "ckpt"
            if adapter:
                load_lora(pipe, path, adapter)
            for row in group.itertuples():
                if adapter:
                    set_lora_scale(pipe, float(row.scale), adapter)
                image = _generate_one(pipe, row, settings)
                with atomic_path(row.file) as tmp:
                    image.save(tmp, format="PNG")
                bar.update()
            if adapter:
                pipe.delete_adapters(adapter)
        bar.close()
    return plan.assign(cached=~plan["file"].isin(set(todo["file"])))
