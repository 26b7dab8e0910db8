"""Runner: failed runs still render, secrets never reach outputs, the workspace lock refuses a second run."""

import json
import os
import subprocess
import sys
import time

import nbformat
import pytest

from pistachio_nb.errors import WorkspaceLockedError
from pistachio_nb.runner import EXIT_LOCKED, load_summary, run_notebooks, workspace_lock

from .conftest import ROOT, write_notebook

# fixture notebooks stand in for 00_setup, so they carry its real parameters cell
SETUP_PARAMS = next(c.source for c in nbformat.read(str(ROOT / "notebooks" / "00_setup.ipynb"), as_version=4).cells
                    if "parameters" in c.metadata.get("tags", []))


def _profile(tmp_path, workspace):
    path = tmp_path / "t.yaml"
    path.write_text(f"common:\n  workspace: {workspace}\n")
    return path


def test_failed_notebook_is_saved_marked_at_failing_cell(tmp_path):
    nb = write_notebook(tmp_path / "nb" / "00_setup.ipynb", SETUP_PARAMS, "x = 1", "raise ValueError('pose folder is empty')")
    result = run_notebooks(str(nb), _profile(tmp_path, tmp_path / "ws"), runs_root=tmp_path / "runs", echo=lambda s: None)
    summary = load_summary(result.run_dir)["notebooks"]["00_setup"]
    assert summary["status"] == "failed"
    assert "ValueError: pose folder is empty" in summary["error"]
    rendered = json.loads((result.run_dir / "00_setup.ipynb").read_text())
    errors = [c for c in rendered["cells"] if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert len(errors) == 1 and "raise ValueError" in "".join(errors[0]["source"])
    assert (result.run_dir / "00_setup.html").stat().st_size > 1000


def test_secret_values_never_reach_rendered_outputs(tmp_path, monkeypatch):
    secret = "hf_sEcReT0123456789abcdef"
    monkeypatch.setenv("HF_TOKEN", secret)
    nb = write_notebook(tmp_path / "nb" / "00_setup.ipynb", SETUP_PARAMS,
                        "import os\nprint('token is', os.environ['HF_TOKEN'])",
                        "raise RuntimeError('bad token ' + os.environ['HF_TOKEN'])")
    result = run_notebooks(str(nb), _profile(tmp_path, tmp_path / "ws"), runs_root=tmp_path / "runs", echo=lambda s: None)
    texts = {p.name: p.read_text() for p in result.run_dir.iterdir()}
    assert set(texts) == {"00_setup.ipynb", "00_setup.html", "summary.json"}
    for name, text in texts.items():
        assert secret not in text, name
    assert "token is ***" in texts["00_setup.ipynb"]
    assert "bad token ***" in texts["summary.json"]


def test_missing_declared_artifact_fails_the_run(tmp_path):
    nb_path = write_notebook(tmp_path / "nb" / "00_setup.ipynb", SETUP_PARAMS, "x = 1")
    nb = nbformat.read(str(nb_path), as_version=4)
    nb.metadata["pistachio"] = {"artifacts": ["setup/never_written.csv"]}
    nbformat.write(nb, str(nb_path))
    result = run_notebooks(str(nb_path), _profile(tmp_path, tmp_path / "ws"), runs_root=tmp_path / "runs", echo=lambda s: None)
    assert not result.ok
    assert result.results[0].missing_artifacts == ["setup/never_written.csv"]


def test_lock_refuses_a_concurrent_run_in_process(tmp_path):
    ws = tmp_path / "ws"
    with workspace_lock(ws):
        with pytest.raises(WorkspaceLockedError, match="in use by pid"):
            run_notebooks("00_setup", _profile(tmp_path, ws), runs_root=tmp_path / "runs", echo=lambda s: None)
    with workspace_lock(ws):  # released: can be taken again
        pass


def test_cli_refuses_when_another_process_holds_the_lock(tmp_path):
    ws = tmp_path / "ws"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from pistachio_nb.runner import workspace_lock\n"
        f"with workspace_lock(Path({str(ws)!r})):\n    print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pistachio_nb.cli", "run", "00_setup", "--params",
                               str(_profile(tmp_path, ws))], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == EXIT_LOCKED
        assert "in use" in proc.stderr and f"pid {holder.pid}" in proc.stderr
        assert time.perf_counter() - start < 30  # refused at once, not after running
    finally:
        holder.kill()
        holder.wait()
    assert os.path.exists(ws / ".pistachio-run.lock")


def test_busy_service_port_is_refused_before_any_notebook_runs(tmp_path):
    import socket

    from pistachio_nb.errors import ServiceError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        profile = tmp_path / "t.yaml"
        profile.write_text(f"common:\n  workspace: {tmp_path / 'ws'}\nservices:\n  comfyui_test_server: {{port: {port}}}\n")
        with pytest.raises(ServiceError, match=f"127.0.0.1:{port}.*in use"):
            run_notebooks("00_setup", profile, runs_root=tmp_path / "runs", echo=lambda s: None)
    assert not list((tmp_path / "runs").glob("*/00_setup.ipynb"))


def test_prepare_injects_profile_values_without_running(tmp_path):
    import papermill as pm

    from pistachio_nb.params import params_model_for
    from pistachio_nb.profiles import notebook_defaults
    from pistachio_nb.runner import prepare_notebooks

    profile = tmp_path / "p.yaml"
    profile.write_text(f"common:\n  workspace: {tmp_path / 'ws'}\n03_training:\n  max_steps: 7\n")
    [path] = prepare_notebooks("03_training", profile, ["rank=8"], out_root=tmp_path / "interactive")
    nb = nbformat.read(str(path), as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code")  # nothing was executed
    injected = next(c.source for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    namespace = {**notebook_defaults(ROOT / "notebooks" / "03_training.ipynb")}
    exec(injected, {}, namespace)  # what the kernel will see after the parameters cell
    params = params_model_for("03_training").validate_values(namespace)
    assert (params.max_steps, params.rank, str(params.workspace)) == (7, 8, str(tmp_path / "ws"))
    assert set(pm.inspect_notebook(str(path))) == set(params_model_for("03_training").model_fields)
    assert not (tmp_path / "ws" / "lora").exists()
