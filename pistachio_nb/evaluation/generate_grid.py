"""The checkpoint x prompt x seed (x LoRA scale) image grid: one plan, one cache key scheme, two renderers.

Each image's file name is a hash of everything that determines it (LoRA file content, prompt, seed, scale,
sampler settings and, drawn by ComfyUI, the workflow as filled for the cell with LoRA names replaced by their
content hash, as batch job ids hash it), so a rerun only fills gaps and a retrained checkpoint is regenerated.
The local diffusers pipeline (the demo, pods without ComfyUI) or `comfy_grid` (the user's workflow) draws it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..batch.jobs import graph_content
from ..comfy.publish import content_name
from ..downloads import sha256_file
from ..files import atomic_path
from ..lora import load_lora, set_lora_scale
from ..models import load_sdxl_pipeline
from .comfy_grid import ComfyGrid, comfy_grid, render_comfy_grid
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
    comfy: ComfyGrid | None = None  # drawn by this ComfyUI workflow; None: by the local diffusers pipeline

    def sampler(self) -> dict[str, Any]:
        """The sampler values every cache key hashes (the ComfyUI workflow goes in as the filled graph)."""
        return {"base_model": self.base_model, "width": self.width, "height": self.height, "steps": self.steps,
                "guidance_scale": self.guidance_scale, "negative_prompt": self.negative_prompt}


def sampler_settings(p: Any) -> SamplerSettings:
    """04's sampler settings, with the ComfyUI backend when `grid_backend` is comfyui (its workflow checked now)."""
    comfy = comfy_grid(p) if p.grid_backend == "comfyui" else None
    return SamplerSettings(p.base_model, p.width, p.height, p.steps, p.guidance_scale, p.negative_prompt, comfy)


def image_key(settings: SamplerSettings, lora_sha: str, scale: float, prompt: str, seed: int) -> str:
    """20 hex of a sha256 of everything that decides one grid image, whichever backend draws it."""
    what = {"lora": lora_sha, "scale": scale, "prompt": prompt, "seed": seed, **settings.sampler()}
    if settings.comfy is not None:
        name = content_name(settings.comfy.trigger, lora_sha) if lora_sha else None
        graph = settings.comfy.graph(settings, name, prompt, seed, scale)
        what["graph"] = graph_content(graph, {name: lora_sha} if name else {})
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:20]


def plan_grid(checkpoints: list[Checkpoint], prompts: pd.DataFrame, seeds: list[int], scales: list[float],
              settings: SamplerSettings, image_dir: Path) -> pd.DataFrame:
    """One row per image to have: checkpoint, step, scale, prompt, seed and its cache `file`."""
    rows = []
    for ckpt in checkpoints:
        digest = "" if ckpt.is_base else sha256_file(ckpt.path)
        for scale in [0.0] if ckpt.is_base else scales:
            for prompt in prompts.itertuples():
                for seed in seeds:
                    key = image_key(settings, digest, scale, prompt.prompt, seed)
                    rows.append({"checkpoint": ckpt.name, "step": ckpt.step, "path": ckpt.path, "scale": scale,
                                 "prompt_id": prompt.prompt_id, "prompt": prompt.prompt, "seed": seed,
                                 "file": image_dir / f"{key}.png"})
    return pd.DataFrame(rows)


def _generate_one(pipe, row, settings: SamplerSettings):
    generator = torch.Generator("cpu").manual_seed(int(row.seed))  # CPU generator: same noise on any device
    return pipe(prompt=row.prompt, negative_prompt=settings.negative_prompt or None, width=settings.width,
                height=settings.height, num_inference_steps=settings.steps, guidance_scale=settings.guidance_scale,
                generator=generator).images[0]


def _render_local(todo: pd.DataFrame, settings: SamplerSettings, device: str | None) -> None:
    """Each LoRA loaded once, as a named adapter whose weight is the LoRA scale, and removed before the next."""
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


def generate_grid(plan: pd.DataFrame, settings: SamplerSettings, device: str | None = None) -> pd.DataFrame:
    """Generate every planned image whose file is missing; returns `plan` with a `cached` column.

    Nothing loads (and no server is asked) unless something is missing; `settings.comfy` picks ComfyUI.
    """
    todo = plan[[not Path(f).is_file() for f in plan["file"]]]
    if len(todo):
        if settings.comfy is not None:
            render_comfy_grid(todo, settings)
        else:
            _render_local(todo, settings, device)
    return plan.assign(cached=~plan["file"].isin(set(todo["file"])))
