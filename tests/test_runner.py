"""Runner: failed runs still render, secrets never reach outputs, the workspace lock refuses a second run."""

import json
import os
import subprocess
import sys
import threading
import time

import nbformat
import pandas as pd
import pytest
import requests

from pistachio_nb.errors import ParamsError, ServiceError, WorkspaceLockedError
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
    assert set(texts) == {"00_setup.ipynb", "00_setup.html", "index.html", "summary.json"}
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


def fake_service(workspace, url, marker="started"):
    """A profile service for these tests: leaves a file in the workspace, gives comfy_url, removes the file on stop."""
    flag = workspace / marker
    flag.write_text(url)
    return {"comfy_url": url, "not_a_field_anywhere": 1}, flag.unlink


def failing_service(workspace):
    raise OSError("address already in use")


def _service_profile(tmp_path, start, **options):
    path = tmp_path / "s.yaml"
    opts = "".join(f"\n    {k}: {v}" for k, v in options.items())
    path.write_text(f"common:\n  workspace: {tmp_path / 'ws'}\nservices:\n  svc:\n    start: {start}{opts}\n")
    return path


def test_service_values_reach_the_notebook_and_the_service_stops_after(tmp_path):
    nb = write_notebook(tmp_path / "nb" / "00_setup.ipynb", SETUP_PARAMS,
                        "from pathlib import Path\nassert Path(workspace, 'started').read_text() == comfy_url, comfy_url")
    profile = _service_profile(tmp_path, "tests.test_runner:fake_service", url="http://127.0.0.1:4242")
    result = run_notebooks(str(nb), profile, runs_root=tmp_path / "runs", echo=lambda s: None)
    assert result.ok, result.results[0].error
    injected = next(c.source for c in nbformat.read(str(result.run_dir / "00_setup.ipynb"), as_version=4).cells
                    if "injected-parameters" in c.metadata.get("tags", []))
    assert 'comfy_url = "http://127.0.0.1:4242"' in injected and "not_a_field_anywhere" not in injected
    assert not (tmp_path / "ws" / "started").exists()  # stopped when the run ended


@pytest.mark.parametrize("start, error, words", [
    ("tests.test_runner", ParamsError, "module:function"),
    ("tests.test_runner:no_such_starter", ParamsError, "cannot load"),
    ("tests.test_runner:failing_service", ServiceError, "svc did not start: address already in use"),
])
def test_bad_or_failing_service_stops_the_run_before_any_notebook(tmp_path, start, error, words):
    with pytest.raises(error, match=words):
        run_notebooks("00_setup", _service_profile(tmp_path, start), runs_root=tmp_path / "runs", echo=lambda s: None)
    assert not list((tmp_path / "runs").glob("*/00_setup.ipynb"))


def test_two_demo_comfyui_services_at_once_get_their_own_ports(tmp_path):
    from pistachio_testkit.services import comfyui_imitation

    (one, stop_one), (two, stop_two) = (comfyui_imitation(tmp_path / w) for w in ("a", "b"))
    try:
        assert one["comfy_url"] != two["comfy_url"] and one["servers"] == [one["comfy_url"]]
        for values in (one, two):
            assert requests.get(values["comfy_url"] + "/system_stats", timeout=5).status_code == 200
    finally:
        stop_one(), stop_two()


def test_lock_wait_takes_the_workspace_once_the_holder_is_done(tmp_path):
    ws, taken = tmp_path / "ws", threading.Event()

    def hold() -> None:
        with workspace_lock(ws):
            taken.set()
            time.sleep(1.5)

    holder = threading.Thread(target=hold)
    holder.start()
    taken.wait(5)
    start = time.perf_counter()
    with pytest.raises(WorkspaceLockedError):
        with workspace_lock(ws, wait_s=0.3):
            pass
    with workspace_lock(ws, wait_s=30):
        assert time.perf_counter() - start >= 1.0  # it waited for the holder rather than refusing
    holder.join()


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


def test_two_demo_runs_at_once_both_succeed(tmp_path):
    """Two `pistachio run` of the demo profile side by side: their services take free ports, the second waits."""
    shared, own = tmp_path / "shared", tmp_path / "own"
    cmds = [[sys.executable, "-m", "pistachio_nb.cli", "run", "00_setup", "--params", "params/demo.yaml",
             "--set", f"workspace={ws}", "--wait", "300", "--runs-dir", str(tmp_path / "runs")]
            for ws in (shared, shared, own)]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for cmd in cmds]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert all(out.strip().splitlines()[-1].startswith("ok: run folder") for out in outputs)
    assert len(list((tmp_path / "runs").glob("*/summary.json"))) == 3  # three run folders, none in the repo
    for ws in (shared, own):
        health = pd.read_csv(ws / "setup" / "health.csv").set_index("check")["status"]
        assert health["ComfyUI reachable"] == "PASS" and "FAIL" not in set(health)
