"""Pod health rows, PASS and FAIL paths, against the real ComfyUI protocol test server and real folders."""

from __future__ import annotations

import json
import socket
from importlib import metadata

import pandas as pd
import pytest

from pistachio_nb import health
from pistachio_nb.comfy.client import ComfyClient
from pistachio_nb.files import append_jsonl
from pistachio_nb.pod import SetupParams
from pistachio_nb.paths import repo_root
from pistachio_nb.watchdog import CRASH_LOG
from pistachio_testkit.comfy_server import ComfyTestServer

MODELS = {"checkpoints": ["base.safetensors"], "loras": ["character.safetensors"]}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ComfyTestServer(root=tmp_path_factory.mktemp("comfy"), models=MODELS) as srv:
        yield srv


@pytest.fixture
def client(server):
    with ComfyClient(server.url, timeout=(3, 3), use_websocket=False) as c:
        yield c


@pytest.fixture
def dead_client():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with ComfyClient(f"http://127.0.0.1:{port}", timeout=(1, 1), use_websocket=False) as c:
        yield c


def test_pins_pass_and_drift(tmp_path):
    pins = tmp_path / "pins.txt"
    pins.write_text(f"pandas=={metadata.version('pandas')}\nPyYAML=={metadata.version('PyYAML')}\n")
    assert health.check_pins(pins, fail_on_drift=True).status == "PASS"
    pins.write_text("pandas==0.0.1\n")
    row = health.check_pins(pins, fail_on_drift=True)
    assert row.status == "FAIL" and "pandas" in row.found and "0.0.1" in row.found and "make setup" in row.fix
    assert health.check_pins(pins, fail_on_drift=False).status == "WARN"


def test_gpu_missing_is_fail_only_when_required():
    import torch

    assert not torch.cuda.is_available()  # this CI machine is CPU-only: the real FAIL/WARN path runs
    (row,) = health.check_gpu(require_gpu=True)
    assert row.status == "FAIL" and "CPU only" in row.found
    assert health.check_gpu(require_gpu=False)[0].status == "WARN"


def test_gpu_rows_report_vram_when_cuda_is_present(monkeypatch):
    """The CUDA branch's formatting and low-VRAM rule (torch.cuda answers substituted: no GPU here)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "NVIDIA L40S")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i: ((40 if i == 0 else 4) * 2**30, 48 * 2**30))
    rows = health.check_gpu(require_gpu=True)
    assert [r.status for r in rows] == ["PASS", "WARN"]
    assert "40.0 of 48.0 GiB" in rows[0].found and "nvidia-smi" in rows[1].fix


def test_disk_thresholds(tmp_path):
    assert health.check_disk(tmp_path / "not" / "yet", "ws", 0).status == "PASS"  # nearest existing parent
    row = health.check_disk(tmp_path, "ws", 1e9)
    assert row.status == "FAIL" and "GiB free" in row.found


def test_comfy_reachable_pass_and_fail(client, dead_client):
    row, up = health.check_comfy(client)
    assert up and row.status == "PASS" and "ComfyUI 0.3.64" in row.found and "cpu" in row.found
    row, up = health.check_comfy(dead_client)
    assert not up and row.status == "FAIL" and "pistachio watchdog" in row.fix


def test_node_classes_pass_fail_and_not_checked(client, dead_client):
    assert health.check_node_classes(client, ["KSampler", "LoraLoader"], True).status == "PASS"
    row = health.check_node_classes(client, ["KSampler", "InstantIDFaceAnalysis", "IPAdapterAdvanced"], True)
    assert row.status == "FAIL" and "InstantIDFaceAnalysis, IPAdapterAdvanced" in row.found
    assert health.check_node_classes(dead_client, ["KSampler"], False).status == "WARN"


def test_required_classes_include_the_repo_workflows(tmp_path):
    (tmp_path / "faces.json").write_text(json.dumps({"1": {"class_type": "InstantIDModelLoader", "inputs": {}}}))
    found = health.required_classes(["MyNode"], [health.PACKAGE_WORKFLOWS, tmp_path, tmp_path / "missing"])
    assert {"MyNode", "InstantIDModelLoader", "KSampler"} <= set(found)


def test_model_file_rows(tmp_path, client):
    (tmp_path / "loras").mkdir()
    (tmp_path / "loras" / "character.safetensors").write_bytes(b"x" * 10)
    (tmp_path / "loras" / "other.safetensors").write_bytes(b"x" * 10)
    listing = health.model_listing(client, "loras")
    assert listing == ["character.safetensors"]
    assert health.check_model_file("loras/character.safetensors", tmp_path, listing).status == "PASS"
    row = health.check_model_file("loras/other.safetensors", tmp_path, listing)
    assert row.status == "FAIL" and "does not list it" in row.found
    row = health.check_model_file("checkpoints/base.safetensors", tmp_path, ["base.safetensors"])
    assert row.status == "FAIL" and "not on disk" in row.found
    assert health.check_model_file("loras/character.safetensors", tmp_path, None).status == "WARN"
    assert health.model_listing(client, "no_such_folder") is None


def test_required_models_adds_manifest_entries(tmp_path):
    from pistachio_testkit.services import model_files

    values, stop = model_files(tmp_path / "ws")
    stop()
    models = health.required_models(["loras/x.safetensors"], values["models_manifest"], tmp_path)
    assert models == ["loras/demo_detail_rank4.safetensors", "loras/demo_style_rank1.safetensors", "loras/x.safetensors"]


def test_writable_pass_missing_and_unwritable(tmp_path):
    (tmp_path / "ws").mkdir()
    assert health.check_writable(tmp_path / "ws", "workspace").status == "PASS"
    assert not list((tmp_path / "ws").iterdir())  # the probe file is gone
    row = health.check_writable(tmp_path / "nope", "output")
    assert row.status == "FAIL" and "does not exist" in row.found and not (tmp_path / "nope").exists()  # never created
    row = health.check_writable(__import__("pathlib").Path("/proc/self"), "proc")
    assert row.status == "FAIL" and "/proc/self" in row.found  # a real OS refusal, even as root


def test_crash_rows(tmp_path):
    log = tmp_path / "crashes.jsonl"
    assert health.check_crashes(log).status == "PASS"
    append_jsonl(log, {"time": "2020-01-01T00:00:00+00:00", "reason": "exited", "exit_code": 1})
    assert health.check_crashes(log).status == "PASS"  # older than 24 h
    from datetime import datetime, timezone

    append_jsonl(log, {"time": datetime.now(timezone.utc).isoformat(), "reason": "unresponsive", "exit_code": -15})
    row = health.check_crashes(log)
    assert row.status == "WARN" and row.found.startswith("1;") and "unresponsive" in row.found


def setup_params(tmp_path, url: str, **over) -> SetupParams:
    values = dict(workspace=tmp_path / "ws", pins_file=repo_root() / "requirements-pinned.txt", fail_on_drift=False,
                  comfy_url=url, comfy_timeout_s=3, required_node_classes=["KSampler"],
                  comfy_models_dir=tmp_path / "models", comfy_output_dir=tmp_path / "out", required_models=[],
                  models_manifest=None, workflows_dir=tmp_path / "wf", require_gpu=False, min_free_gb=0)
    return SetupParams.validate_values({**values, **over})


def test_health_report_and_exit_code(tmp_path, server):
    (tmp_path / "out").mkdir()
    (tmp_path / "ws").mkdir()
    (tmp_path / "models" / "loras").mkdir(parents=True)
    (tmp_path / "models" / "loras" / "character.safetensors").write_bytes(b"weights")
    p = setup_params(tmp_path, server.url, required_models=["loras/character.safetensors"])
    report = health.health_report(p)
    assert list(report.columns) == ["status", "check", "found", "fix"]
    assert "FAIL" not in set(report["status"]), report.to_string()
    assert {"ComfyUI reachable", "node classes loaded", "model: loras/character.safetensors",
            "writable: ComfyUI output", "ComfyUI crashes (24 h)"} <= set(report["check"])
    assert health.exit_code(report) == 0 and health.summary(report).endswith("0 FAIL")
    append_jsonl(p.ws.root / CRASH_LOG, {"time": "2999-01-01T00:00:00+00:00", "reason": "exited", "exit_code": 9})
    broken = health.health_report(setup_params(tmp_path, server.url, required_models=["loras/missing.safetensors"]))
    failed = broken[broken["status"] == "FAIL"]
    assert failed["check"].tolist() == ["model: loras/missing.safetensors"] and health.exit_code(broken) == 1
    assert broken.set_index("check").loc["ComfyUI crashes (24 h)", "status"] == "WARN"


def test_params_reject_bad_model_paths_and_urls(tmp_path):
    from pistachio_nb.errors import ParamsError

    with pytest.raises(ParamsError, match="required_models"):
        setup_params(tmp_path, "http://127.0.0.1:8188", required_models=["character.safetensors"])
    with pytest.raises(ParamsError, match="comfy_url"):
        setup_params(tmp_path, "127.0.0.1:8188")


def test_bad_manifest_and_pins_become_fail_rows(tmp_path, server):
    (tmp_path / "out").mkdir()
    bad = tmp_path / "models.yaml"
    bad.write_text("models:\n  - {name: x, source: {url: 'http://h/x'}, dest: loras, sha256: nope}\n")
    report = health.health_report(setup_params(tmp_path, server.url, models_manifest=bad,
                                               pins_file=tmp_path / "missing-pins.txt")).set_index("check")
    assert report.loc["models manifest", "status"] == "FAIL" and "sha256 must be 64 hex" in report.loc["models manifest", "found"]
    assert report.loc["packages match pins", "status"] == "FAIL" and "pins file not found" in report.loc["packages match pins", "found"]
    assert report.loc["ComfyUI reachable", "status"] == "PASS"  # the other checks still ran


def test_cli_health_exit_codes(tmp_path, server, capsys):
    from pistachio_nb.cli import main

    (tmp_path / "out").mkdir()
    args = ["health", "--params", str(repo_root() / "params" / "demo.yaml"), "--set", f"workspace={tmp_path / 'ws'}",
            "--set", f"comfy_output_dir={tmp_path / 'out'}", "--set", "models_manifest=null", "--set", "min_free_gb=0",
            "--set", f"workflows_dir={tmp_path / 'workflows'}"]
    assert main([*args, "--set", f"comfy_url={server.url}"]) == 0
    assert "0 FAIL" in capsys.readouterr().out
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    assert main([*args, "--set", f"comfy_url={dead}", "--set", "comfy_timeout_s=1"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_pulled_workflows_add_their_node_classes(tmp_path, server):
    (tmp_path / "out").mkdir()
    (tmp_path / "wf" / "api").mkdir(parents=True)
    (tmp_path / "wf" / "api" / "faces.json").write_text(json.dumps({"1": {"class_type": "ApplyInstantID", "inputs": {}}}))
    report = health.health_report(setup_params(tmp_path, server.url)).set_index("check")
    assert report.loc["node classes loaded", "status"] == "FAIL" and "ApplyInstantID" in report.loc["node classes loaded", "found"]


def test_require_healthy_gate():
    import pandas as pd

    ok = pd.DataFrame([health.Row("PASS", "a", "fine").__dict__, health.Row("WARN", "b", "meh").__dict__])
    assert health.require_healthy(ok) == "1 PASS, 1 WARN, 0 FAIL"
    bad = pd.concat([ok, pd.DataFrame([health.Row("FAIL", "ComfyUI reachable", "refused", "start it").__dict__])])
    with pytest.raises(health.HealthCheckError, match=r"1 health check\(s\) failed:\n  - ComfyUI reachable: refused -> start it"):
        health.require_healthy(bad)


def test_the_terminal_text_gives_a_line_per_check_and_a_fix_only_where_it_did_not_pass():
    report = pd.DataFrame({"status": ["PASS", "FAIL"], "check": ["disk", "ComfyUI reachable"],
                           "found": ["68 GiB free", "connection refused"], "fix": ["never shown", "start ComfyUI"]})
    lines = health.as_text(report).splitlines()
    assert lines == ["PASS  disk               68 GiB free", "FAIL  ComfyUI reachable  connection refused",
                     "                         fix: start ComfyUI"]
