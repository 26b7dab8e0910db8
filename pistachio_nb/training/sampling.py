"""Sample images for fixed prompts and seeds at each checkpoint: the same question asked every time,
so differences between checkpoints come from training, not from chance."""

from __future__ import annotations

from pathlib import Path

import torch

from ..files import atomic_path


def fill_prompt(prompt: str, trigger: str) -> str:
    return prompt.replace("{trigger}", trigger)


@torch.no_grad()
def sample_images(pipe, prompts: list[str], seeds: list[int], size: int, steps: int, guidance: float,
                  dest: Path) -> list[dict]:  # fmt: skip
    """Generate one PNG per (prompt, seed) into `dest`; returns rows {prompt, seed, file}."""
    rows = []
    modules = [m for m in (pipe.unet, pipe.text_encoder, pipe.text_encoder_2) if m.training]
    for m in modules:
        m.eval()
    try:
        for i, prompt in enumerate(prompts):
            for seed in seeds:
                image = pipe(
                    prompt, height=size, width=size, num_inference_steps=steps, guidance_scale=guidance,
                    generator=torch.Generator("cpu").manual_seed(seed),
                ).images[0]  # fmt: skip
                file = dest / f"p{i}-s{seed}.png"
                with atomic_path(file) as tmp:
                    image.save(tmp, format="PNG")
                rows.append({"prompt": prompt, "seed": seed, "file": str(file)})
    finally:
        for m in modules:
            m.train()
    return rows
