"""04's grid through the real ComfyUI 0.3.64 on CPU: the filled workflow runs, the LoRA scale shows, the rerun is cached.

The checkpoint is the tiny SD1.5-type model of test_publish_real.py (built by comfy_tiny_checkpoint.py in ComfyUI's
venv) and the LoRA is written on the attention projections ComfyUI maps for it, so strength 1 changes the pixels.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pistachio_nb.evaluation.generate_grid import generate_grid, plan_grid, sampler_settings
from pistachio_nb.evaluation.inputs import BASE, Checkpoint
from tests.integration.test_publish_real import server, tiny, write_lora  # noqa: F401 (fixtures)
from tests.test_evaluation_grid_backends import PROMPTS, grid_params

pytestmark = pytest.mark.comfyui_real


def test_the_grid_runs_in_real_comfyui_and_the_lora_scale_changes_the_picture(tmp_path, server, tiny):
    p = grid_params("comfyui", "txt2img_lora", server.url, str(server.base_dir / "models"), trigger="realgrid",
                    comfy_checkpoint=tiny[0].name)
    settings = sampler_settings(p)
    ckpts = [BASE, Checkpoint("real-step-10", 10, write_lora(tmp_path / "lora" / "real-step-10.safetensors", tiny[1]))]
    grid = generate_grid(plan_grid(ckpts, PROMPTS, [1], [0.0, 1.0], settings, tmp_path / "images"), settings)
    assert not grid["cached"].any() and len(grid) == 3
    pixels = {(r.checkpoint, r.scale): np.asarray(Image.open(r.file).convert("RGB"), dtype=float) for r in grid.itertuples()}
    off, on = pixels["real-step-10", 0.0], pixels["real-step-10", 1.0]
    difference = np.abs(off - on).mean()
    print(f"\nreal ComfyUI grid: mean pixel difference {difference:.2f}, LoRA scale 0 vs 1 ({off.shape[1]}x{off.shape[0]} px)")
    assert off.shape == (64, 64, 3) and difference > 1
    assert np.abs(pixels["base", 0.0] - off).mean() < 0.5  # no loader (base row) draws what strength 0 draws
    loras = server.base_dir / "models" / "loras"
    assert len(list(loras.glob("realgrid-*.safetensors"))) == 1 and not (loras / "realgrid.safetensors").exists()  # no alias
    again = generate_grid(plan_grid(ckpts, PROMPTS, [1], [0.0, 1.0], settings, tmp_path / "images"), settings)
    assert again["cached"].all() and again["file"].equals(grid["file"])
