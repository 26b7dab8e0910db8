"""Pod health rows against the real ComfyUI: PASS when it is up and has the files, FAIL on a dead port."""

from __future__ import annotations

import pytest

from pistachio_nb import health
from pistachio_nb.comfy.client import ComfyClient
from pistachio_nb.paths import repo_root
from pistachio_nb.pod import SetupParams

from .conftest import dead_url

pytestmark = pytest.mark.comfyui_real


def setup_params(tmp_path, url: str, base_dir, **over) -> SetupParams:
    values = dict(workspace=tmp_path / "ws", pins_file=repo_root() / "requirements-pinned.txt", fail_on_drift=False,
                  comfy_url=url, comfy_timeout_s=5, required_node_classes=["KSampler", "LoraLoader", "SaveImage"],
                  comfy_models_dir=base_dir / "models", comfy_output_dir=base_dir / "output",
                  required_models=["checkpoints/tiny-sdxl.safetensors"], models_manifest=None,
                  workflows_dir=tmp_path / "wf", require_gpu=False, min_free_gb=0)
    return SetupParams.validate_values({**values, **over})


def test_health_rows_pass_against_the_real_server(real_comfy, model_file):
    model_file("checkpoints", "tiny-sdxl.safetensors")
    with ComfyClient(real_comfy.url) as client:
        row, up = health.check_comfy(client)
        assert up and row.status == "PASS" and "ComfyUI 0.3.64" in row.found, row
        classes = health.required_classes(["KSampler"], [health.PACKAGE_WORKFLOWS])
        assert len(classes) > 5  # the package's workflows name their classes
        assert health.check_node_classes(client, classes, True).status == "PASS"
        row = health.check_node_classes(client, ["KSampler", "IPAdapterAdvanced"], True)
        assert row.status == "FAIL" and "IPAdapterAdvanced" in row.found  # a custom node pack not installed
        listing = health.model_listing(client, "checkpoints")
        assert listing is not None and "tiny-sdxl.safetensors" in listing
        models = real_comfy.base_dir / "models"
        assert health.check_model_file("checkpoints/tiny-sdxl.safetensors", models, listing).status == "PASS"
        assert health.model_listing(client, "no_such_folder") is None  # real answers 404 for an unknown folder


def test_health_report_passes_then_fails_on_a_dead_port(real_comfy, model_file, tmp_path):
    model_file("checkpoints", "tiny-sdxl.safetensors")
    (tmp_path / "ws").mkdir()  # health observes: it never creates the workspace it checks
    report = health.health_report(setup_params(tmp_path, real_comfy.url, real_comfy.base_dir))
    assert "FAIL" not in set(report["status"]), report.to_string()
    assert report.set_index("check").loc["model: checkpoints/tiny-sdxl.safetensors", "status"] == "PASS"
    dead = health.health_report(setup_params(tmp_path, dead_url(), real_comfy.base_dir)).set_index("check")
    assert dead.loc["ComfyUI reachable", "status"] == "FAIL" and "cannot reach" in dead.loc["ComfyUI reachable", "found"]
    assert dead.loc["node classes loaded", "status"] == "WARN"
    assert dead.loc["model: checkpoints/tiny-sdxl.safetensors", "status"] == "WARN"  # on disk, listing unavailable
    assert health.exit_code(dead.reset_index()) == 1
