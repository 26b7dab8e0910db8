"""04's grid through ComfyUI (the imitation) and through diffusers: one plan, one cache key scheme, checks up front."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import papermill as pm
import pytest
from PIL import Image
from safetensors.numpy import save_file

from pistachio_nb.comfy.bindings import BindingsError
from pistachio_nb.comfy.errors import WorkflowError
from pistachio_nb.comfy.workflow import WORKFLOWS_DIR
from pistachio_nb.errors import ParamsError
from pistachio_nb.evaluation import CheckpointsParams
from pistachio_nb.evaluation.generate_grid import generate_grid, plan_grid, sampler_settings
from pistachio_nb.evaluation.inputs import BASE, Checkpoint
from pistachio_nb.paths import repo_root
from pistachio_testkit.comfy_server import ComfyTestServer

GOOD = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k"  # a key the imitation's LoraLoader applies
PROMPTS = pd.DataFrame({"prompt_id": ["c0"], "prompt": ["ohwx woman at the beach"]})


def write_lora(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({f"{GOOD}.lora_down.weight": rng.standard_normal((4, 8), dtype=np.float32),
               f"{GOOD}.lora_up.weight": rng.standard_normal((8, 4), dtype=np.float32),
               f"{GOOD}.alpha": np.array(4.0, np.float32)}, str(path))
    return path


def user_workflow(folder: Path, sampler: str = "dpmpp_2m", drop: tuple[str, ...] = ()) -> Path:
    """The packaged txt2img_lora as a user's own workflow file, optionally edited, with its bindings beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    graph = json.loads((WORKFLOWS_DIR / "txt2img_lora.json").read_text())
    graph["6"]["inputs"]["sampler_name"] = sampler
    (folder / "mine.json").write_text(json.dumps(graph))
    lines = (WORKFLOWS_DIR / "txt2img_lora.bindings.yaml").read_text().splitlines()
    (folder / "mine.bindings.yaml").write_text("\n".join(line for line in lines if not drop or not line.startswith(drop)) + "\n")
    return folder / "mine.json"


def grid_params(backend: str, workflow: str = "", comfy_url: str = "", models: str = "", **changes) -> SimpleNamespace:
    """The fields of 04's params the grid reads (the demo's values)."""
    return SimpleNamespace(**{"grid_backend": backend, "grid_workflow": workflow, "comfy_url": comfy_url,
                              "comfy_models_dir": models, "comfy_checkpoint": "tiny-sdxl.safetensors", "trigger": "ohwx",
                              "base_model": "tiny:sdxl", "width": 64, "height": 64, "steps": 2, "guidance_scale": 5.0,
                              "negative_prompt": "", **changes})


@pytest.fixture
def server(tmp_path):
    with ComfyTestServer(root=tmp_path / "comfy", models={"checkpoints": ["tiny-sdxl.safetensors"]}) as srv:
        yield srv


def checkpoints(tmp_path: Path) -> list[Checkpoint]:
    return [BASE, Checkpoint("run-step-100", 100, write_lora(tmp_path / "lora" / "run-step-100.safetensors"))]


def plan(settings, ckpts, out: Path, scales=(0.5, 1.0)) -> pd.DataFrame:
    return plan_grid(ckpts, PROMPTS, [1, 2], list(scales), settings, out)


def test_one_plan_one_key_scheme_for_both_backends(tmp_path):
    ckpts = checkpoints(tmp_path)
    local = sampler_settings(grid_params("local"))
    comfy = sampler_settings(grid_params("comfyui", str(user_workflow(tmp_path / "wf")), "http://127.0.0.1:1", str(tmp_path)))
    a, b = plan(local, ckpts, tmp_path / "images"), plan(comfy, ckpts, tmp_path / "images")
    cells = ["checkpoint", "step", "scale", "prompt_id", "seed"]
    assert a[cells].equals(b[cells]) and len(a) == 2 + 2 * 2  # base: one scale; the LoRA: two scales x two seeds
    assert plan(local, ckpts, tmp_path / "images")["file"].equals(a["file"])  # same plan, same keys, for each backend
    assert plan(comfy, ckpts, tmp_path / "images")["file"].equals(b["file"])
    assert a["file"].nunique() == b["file"].nunique() == len(a) and not set(a["file"]) & set(b["file"])
    moved = [BASE, Checkpoint("renamed", 100, Path(shutil.copy(ckpts[1].path, tmp_path / "renamed.safetensors")))]
    assert plan(comfy, moved, tmp_path / "images")["file"].tolist() == b["file"].tolist()  # keyed by LoRA content
    edited = sampler_settings(grid_params("comfyui", str(user_workflow(tmp_path / "wf2", sampler="euler")),
                                          "http://127.0.0.1:1", str(tmp_path)))
    assert not set(plan(edited, ckpts, tmp_path / "images")["file"]) & set(b["file"])  # an edited workflow: new images


def test_comfyui_grid_writes_each_cell_then_serves_the_rerun_from_cache(tmp_path, server):
    ckpts = checkpoints(tmp_path)
    settings = sampler_settings(grid_params("comfyui", str(user_workflow(tmp_path / "wf")), server.url,
                                            str(server.models_root)))
    todo = plan(settings, ckpts, tmp_path / "images")
    first = generate_grid(todo, settings)
    assert not first["cached"].any() and all(Path(f).is_file() for f in first["file"])
    loras = sorted(p.name for p in (server.models_root / "loras").glob("*.safetensors"))
    assert len(loras) == 1 and loras[0].startswith("ohwx-") and loras[0] != "ohwx.safetensors"  # content name, no alias
    pixels = {(r.checkpoint, r.scale, r.seed): np.asarray(Image.open(r.file), dtype=float) for r in first.itertuples()}
    assert np.abs(pixels["run-step-100", 0.5, 1] - pixels["run-step-100", 1.0, 1]).mean() > 1  # the scale reaches ComfyUI
    assert np.abs(pixels["base", 0.0, 1] - pixels["run-step-100", 1.0, 1]).mean() > 1
    assert json.loads(Image.open(first["file"].iloc[-1]).text["prompt"])["2"]["inputs"]["lora_name"] == loras[0]
    assert "2" not in json.loads(Image.open(first["file"].iloc[0]).text["prompt"])  # base row: the LoRA loader left out
    server.stop()  # the rerun needs no server: every cell is on disk under its key
    again = generate_grid(plan(settings, ckpts, tmp_path / "images"), settings)
    assert again["cached"].all() and again["file"].equals(first["file"])


def test_bad_comfyui_setup_fails_before_any_render_naming_the_param_or_file(tmp_path):
    p = lambda wf: grid_params("comfyui", wf, "http://127.0.0.1:1", str(tmp_path))  # noqa: E731
    with pytest.raises(WorkflowError, match="grid_workflow 'no/such.json'"):
        sampler_settings(p("no/such.json"))
    lonely = user_workflow(tmp_path / "lonely")
    lonely.with_name("mine.bindings.yaml").unlink()
    with pytest.raises(BindingsError, match=r"has no bindings file .*mine\.bindings\.yaml"):
        sampler_settings(p(str(lonely)))
    for drop, shown in ((("seed:",), "seed: unbound"), (("loras:", "  -"), "lora: unbound"), (("prompt:",), "prompt: unbound")):
        with pytest.raises(BindingsError, match=f"cannot fill the grid(.|\n)*{shown}"):
            sampler_settings(p(str(user_workflow(tmp_path / drop[0].rstrip(":"), drop=drop))))


def test_params_refuse_a_comfyui_grid_without_workflow_or_server():
    notebook = repo_root() / "notebooks" / "04_checkpoints.ipynb"
    defaults = {k: ast.literal_eval(v["default"]) for k, v in pm.inspect_notebook(str(notebook)).items()}
    assert defaults["grid_backend"] == "local"  # the demo and pods without ComfyUI draw with diffusers
    with pytest.raises(ParamsError, match="grid_backend comfyui needs grid_workflow, comfy_url, comfy_models_dir"):
        CheckpointsParams.validate_values({**defaults, "grid_backend": "comfyui"}, check_paths=False)
    with pytest.raises(ParamsError, match="grid_backend"):
        CheckpointsParams.validate_values({**defaults, "grid_backend": "a1111"}, check_paths=False)
