"""Strength x LoRA-scale sweep with one fixed seed: the grid that shows what each knob does.

Same seed, same mask, same prompt in every cell, so any difference between two cells is caused by
the knob that changed. Each cell is saved with its own sidecar (it is a reproducible result too).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..display import image_grid, save_figure
from ..files import write_csv
from .stage import Job, run_and_save, saved_result


def masked_change(before, after, mask) -> float:
    """Mean absolute pixel change (0-255) inside the mask: how far the result moved from the original."""
    weight = np.asarray(mask, dtype=np.float32) / 255.0
    diff = np.abs(np.asarray(after, dtype=np.float32) - np.asarray(before, dtype=np.float32)).mean(axis=2)
    return float((diff * weight).sum() / max(weight.sum(), 1e-6))


def sweep(pipe, job: Job, strengths: list[float], lora_scales: list[float]):
    """Inpaint every strength x scale pair at the job's seed (reusing saved cells); write `sweep.csv`, `sweep_grid.png`.

    Returns (figure, table): rows of the grid are strengths, columns LoRA scales.
    """
    folder = job.params.ws.inpainting / "sweep"
    rows, cells = [], []
    pairs = [(s, k) for s in strengths for k in lora_scales]
    for strength, scale in tqdm(pairs, desc="sweep"):
        cell = replace(job, params=job.params.model_copy(update={"strength": strength, "lora_scale": scale}))
        grid_info = {"strengths": strengths, "lora_scales": lora_scales}
        result = saved_result(folder, cell) or run_and_save(pipe, cell, folder, sweep=grid_info)
        cells.append(result.image)
        rows.append({"strength": strength, "lora_scale": scale, "seed": cell.params.seed,
                     "masked_change": round(masked_change(job.image, result.image, job.masks.soft), 2),
                     "cached": result.cached, "file": result.path.relative_to(job.params.ws.root).as_posix()})  # fmt: skip
    n = len(lora_scales)
    grid = [cells[i : i + n] for i in range(0, len(cells), n)]
    labels = {"row_labels": [f"strength {s:g}" for s in strengths], "col_labels": [f"LoRA {k:g}" for k in lora_scales]}
    fig = image_grid(grid, **labels)
    save_figure(fig, job.params.ws.inpainting / "sweep_grid.png")
    table = pd.DataFrame(rows)
    write_csv(job.params.ws.inpainting / "sweep.csv", table)
    return fig, table
