"""`check_pod`: the whole 00_setup stage in one call, its five tables on disk, and the gate."""

from __future__ import annotations

import json
import socket

import pandas as pd
import pytest

from pistachio_nb.health import HealthCheckError
from pistachio_nb.paths import repo_root
from pistachio_nb.pod import PodReport, SetupParams, check_pod
from pistachio_nb.pod.check import TABLES
from pistachio_testkit.comfy_server import ComfyTestServer

MODELS = {"checkpoints": ["base.safetensors"], "loras": ["character.safetensors"]}


def params(tmp_path, url: str, **over) -> SetupParams:
    values = dict(workspace=tmp_path / "ws", pins_file=repo_root() / "requirements-pinned.txt", fail_on_drift=False,
                  comfy_url=url, comfy_timeout_s=3, required_node_classes=["KSampler"],
                  comfy_models_dir=tmp_path / "comfy" / "models", comfy_output_dir=tmp_path / "comfy" / "output",
                  required_models=["loras/character.safetensors"], models_manifest=None, workflows_dir=tmp_path / "wf",
                  require_gpu=False, min_free_gb=0)
    return SetupParams.validate_values({**values, **over})


def test_check_pod_writes_every_table_with_a_sidecar(tmp_path):
    root = tmp_path / "comfy"
    with ComfyTestServer(root=root, models=MODELS) as srv:
        (root / "models" / "loras" / "character.safetensors").write_bytes(b"weights")
        report = check_pod(params(tmp_path, srv.url))
    assert isinstance(report, PodReport) and report.exit_code == 0, report.health.to_string()
    for name in TABLES:
        csv = tmp_path / "ws" / "setup" / f"{name}.csv"
        written = pd.read_csv(csv) if csv.stat().st_size > 1 else pd.DataFrame()
        assert len(written) == len(getattr(report, name)), name
        assert json.loads((csv.parent / f"{name}.csv.params.json").read_text())["params"]["comfy_url"] == srv.url
    assert report.health.set_index("check").loc["model: loras/character.safetensors", "status"] == "PASS"
    assert "txt2img_lora.json" in set(report.workflows["workflow"])  # pulled from the server's saved workflows
    assert list(report.overview["step"]) == list(TABLES) and report.require_healthy().endswith("0 FAIL")


def test_a_dead_comfyui_is_rows_not_exceptions_and_the_gate_stops(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    report = check_pod(params(tmp_path, dead, comfy_timeout_s=1))
    assert report.workflows.empty and report.health.set_index("check").loc["ComfyUI reachable", "status"] == "FAIL"
    assert (tmp_path / "ws" / "setup" / "workflows.csv").is_file()
    with pytest.raises(HealthCheckError, match="ComfyUI reachable"):
        report.require_healthy()


def test_a_bad_manifest_is_a_failed_models_row(tmp_path):
    bad = tmp_path / "models.yaml"
    bad.write_text("models:\n  - {name: x, source: {url: 'http://h/x'}, dest: loras, sha256: nope}\n")
    with ComfyTestServer(root=tmp_path / "comfy", models=MODELS) as srv:
        report = check_pod(params(tmp_path, srv.url, models_manifest=bad, required_models=[]))
    assert report.models["status"].tolist() == ["failed"] and "sha256" in report.models["detail"][0]
    assert report.health.set_index("check").loc["models manifest", "status"] == "FAIL"
