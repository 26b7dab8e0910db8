"""publish_lora against the real ComfyUI 0.3.64 on CPU: the picture check and ComfyUI's own log of the load.

The checkpoint is a tiny SD1.5-type model ComfyUI detects and samples in seconds (comfy_tiny_checkpoint.py,
run in ComfyUI's venv; random weights). LoRAs are written here on the attention projections ComfyUI maps for
it: with the right names the picture changes and the log is clean; with names ComfyUI does not know it loads
without an error, changes nothing and logs "lora key not loaded"; with a wrong shape it logs
"ERROR lora ... shape ... is invalid" while sampling. Each is caught both from the streamed log and, with the
stream switched off, from `/internal/logs/raw` by the prompt's time window.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
from pathlib import Path

import papermill as pm
import pytest
import torch
from safetensors.torch import save_file

from pistachio_nb.comfy.client import ComfyClient
from pistachio_nb.comfy.publish import LoraPublishError, publish_lora, read_published
from pistachio_nb.evaluation import CheckpointsParams
from pistachio_nb.files import write_json
from pistachio_nb.paths import repo_root
from pistachio_testkit import real_comfyui

pytestmark = pytest.mark.comfyui_real
SCRIPT = Path(__file__).with_name("comfy_tiny_checkpoint.py")
NOTEBOOK = repo_root() / "notebooks" / "04_checkpoints.ipynb"


@pytest.fixture(scope="module")
def tiny(comfy_install, tmp_path_factory) -> tuple[Path, dict[str, list[int]]]:
    """(checkpoint file, kohya LoRA key -> weight shape) of the tiny SD1.5-type model, built by ComfyUI's python."""
    out = tmp_path_factory.mktemp("tiny-sd15")
    run = subprocess.run([str(comfy_install), str(SCRIPT), str(real_comfyui.comfy_source()), str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    return out / answer["checkpoint"], answer["lora_keys"]


@pytest.fixture
def server(real_comfy, tiny):
    dest = real_comfy.base_dir / "models" / "checkpoints" / tiny[0].name
    if not dest.exists():
        shutil.copyfile(tiny[0], dest)
    return real_comfy


def write_lora(path: Path, keys: dict[str, list[int]], rename: bool = False, wrong_shape: bool = False) -> Path:
    """A kohya LoRA (rank 4, strong weights) on `keys`; renamed keys ComfyUI does not know, or a down of the wrong width."""
    g = torch.Generator().manual_seed(1)
    tensors = {}
    for key, (out_dim, in_dim) in keys.items():
        name = key.replace("lora_unet_", "lora_unet_x_") if rename else key
        tensors[f"{name}.lora_down.weight"] = torch.randn(4, in_dim + 3 * wrong_shape, generator=g).half()
        tensors[f"{name}.lora_up.weight"] = torch.randn(out_dim, 4, generator=g).half()
        tensors[f"{name}.alpha"] = torch.tensor(4.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    return path


def params(tmp_path: Path, server, lora: Path, trigger: str) -> CheckpointsParams:
    defaults = {k: ast.literal_eval(v["default"]) for k, v in pm.inspect_notebook(str(NOTEBOOK)).items()}
    ws = tmp_path / "ws"
    write_json(ws / "comparison" / "recommendation.json", {"checkpoint": str(lora), "step": 10, "lora_scale": 1.0})
    return CheckpointsParams.validate_values({**defaults, "workspace": str(ws), "trigger": trigger, "comfy_url": server.url,
                                              "comfy_models_dir": str(server.base_dir / "models"),
                                              "comfy_checkpoint": "tiny-sd15.safetensors", "width": 64, "height": 64,
                                              "steps": 2}, check_paths=False)


def test_a_lora_comfyui_applies_is_published_under_both_names(tmp_path, server, tiny):
    p = params(tmp_path, server, write_lora(tmp_path / "good.safetensors", tiny[1]), "realgood")
    done = publish_lora(p)
    print(f"\nreal ComfyUI: mean pixel difference {done.verification.difference:.2f} at strength {done.verification.strength}")
    assert done.verification.changes_picture and done.verification.problems == []
    assert done.verification.log_source == "stream"
    with ComfyClient(server.url) as client:
        listed = client.models("loras")
    assert {done.file, "realgood.safetensors"} <= set(listed)
    assert read_published(p.ws.root)["file"] == done.file


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "raw-window"])
@pytest.mark.parametrize("kind,line", [("renamed", "lora key not loaded: lora_unet_x_"), ("wrong_shape", "ERROR lora diffusion_model.")])
def test_comfyui_log_catches_keys_it_did_not_apply(tmp_path, server, tiny, kind, line, stream, monkeypatch):
    if not stream:  # as on a server without the subscribe route: the last 300 lines, matched by time window
        monkeypatch.setattr(ComfyClient, "subscribe_logs", lambda self, cid, enabled=True: False)
    lora = write_lora(tmp_path / f"{kind}.safetensors", tiny[1], rename=kind == "renamed", wrong_shape=kind == "wrong_shape")
    with pytest.raises(LoraPublishError) as err:
        publish_lora(params(tmp_path, server, lora, f"real{kind.replace('_', '')}{int(stream)}"))
    text = str(err.value)
    assert line in text and ("streamed" if stream else "last 300 lines") in text, text
    if kind == "renamed":  # a silent no-op: the pixels equal strength 0's
        assert "FAIL LoRA changes the picture: mean pixel difference 0.00" in text, text
    assert not (server.base_dir / "models" / "loras" / f"real{kind.replace('_', '')}{int(stream)}.safetensors").exists()
