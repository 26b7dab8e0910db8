"""The demo profile's services (pistachio_testkit.services): what each leaves in the workspace and gives the notebooks."""

from __future__ import annotations

import requests

from pistachio_nb.comfy.client import ComfyClient
from pistachio_testkit.services import comfyui_imitation, demo_inputs


def test_demo_inputs_writes_photos_and_kb_once_and_reuses_them(tmp_path):
    values, stop = demo_inputs(tmp_path)
    stop()
    source = tmp_path / "source_images"
    assert values == {"source_dir": str(source), "kb_root": str(tmp_path / "knowledge_demo")}
    assert len(list(source.rglob("*.jpg"))) >= 12 and (tmp_path / "knowledge_demo" / ".git").is_dir()
    before = {p: p.stat().st_mtime_ns for p in source.rglob("*") if p.is_file()}
    demo_inputs(tmp_path)
    assert {p: p.stat().st_mtime_ns for p in source.rglob("*") if p.is_file()} == before  # reused, not rewritten


def test_comfyui_imitation_serves_its_workspace_folders_on_a_free_port(tmp_path):
    values, stop = comfyui_imitation(tmp_path, models={"checkpoints": ["a.safetensors"]})
    try:
        assert values["comfy_models_dir"] == str(tmp_path / "comfy" / "models")
        assert (tmp_path / "comfy" / "models" / "checkpoints" / "a.safetensors").is_file()
        assert (tmp_path / "comfy" / "user" / "default" / "workflows" / "txt2img_lora.json").is_file()
        with ComfyClient(values["comfy_url"], timeout=(3, 5), use_websocket=False) as client:
            assert client.models("checkpoints") == ["a.safetensors"]
    finally:
        stop()
    assert (tmp_path / "comfy" / "output").is_dir()  # the workspace keeps the demo's files
    try:
        requests.get(values["comfy_url"] + "/system_stats", timeout=2)
        stopped = False
    except requests.ConnectionError:
        stopped = True
    assert stopped
