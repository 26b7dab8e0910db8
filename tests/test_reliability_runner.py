"""Runs leave nothing behind: no empty run folder when refused, no kernel or child after SIGTERM/SIGINT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pistachio_nb.errors import ServiceError, WorkspaceLockedError
from pistachio_nb.runner import lock_roots, run_notebooks, workspace_lock

from .conftest import ROOT, write_notebook
from .test_runner import SETUP_PARAMS, _profile

SECRET = "hf_sEcReT0123456789interrupt"

RUN_SCRIPT = """
import sys
from pathlib import Path
from pistachio_nb.runner import RunInterruptedError, run_notebooks
try:
    run_notebooks(sys.argv[1], sys.argv[2], runs_root=Path(sys.argv[3]))
except RunInterruptedError as err:
    print("interrupted:", err, flush=True)
    sys.exit(9)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (ProcessLookupError, FileNotFoundError):
        return False


def test_a_run_refused_by_the_lock_leaves_no_run_folder(tmp_path):
    nb = write_notebook(tmp_path / "nb" / "00_setup.ipynb", SETUP_PARAMS, "x = 1")
    runs = tmp_path / "runs"
    with workspace_lock(tmp_path / "ws"):
        with pytest.raises(WorkspaceLockedError):
            run_notebooks(str(nb), _profile(tmp_path, tmp_path / "ws"), runs_root=runs, echo=lambda s: None)
    assert not runs.exists() or not list(runs.iterdir())


def test_a_service_that_fails_to_start_leaves_no_run_folder(tmp_path):
    profile = tmp_path / "s.yaml"
    profile.write_text(f"common:\n  workspace: {tmp_path / 'ws'}\nservices:\n  svc:\n    start: tests.test_runner:failing_service\n")
    with pytest.raises(ServiceError):
        run_notebooks("00_setup", profile, runs_root=tmp_path / "runs", echo=lambda s: None)
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_a_workspace_named_by_a_symlink_and_its_real_path_is_locked_once(tmp_path):
    real = tmp_path / "ws"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    profile = tmp_path / "s.yaml"  # two notebooks, one workspace spelled two ways; the service stops the run after locking
    profile.write_text(f"common:\n  workspace: {real}\n01_dataset:\n  workspace: {tmp_path / 'link'}\n"
                       "services:\n  svc:\n    start: tests.test_runner:failing_service\n")
    with pytest.raises(ServiceError):  # was WorkspaceLockedError: the run locked itself out
        run_notebooks("all", profile, runs_root=tmp_path / "runs", echo=lambda s: None)


def test_lock_roots_are_absolute_real_and_unique(tmp_path, monkeypatch):
    real = tmp_path / "ws"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    monkeypatch.chdir(tmp_path)
    ws = lambda root: type("P", (), {"ws": type("W", (), {"root": root})()})()  # noqa: E731
    plans = [(None, {}, ws(real)), (None, {}, ws(tmp_path / "link")), (None, {}, ws(tmp_path / "x" / ".." / "ws"))]
    assert lock_roots(plans) == [real.resolve()]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signalled_run_stops_the_kernel_group_and_saves_the_scrubbed_partial_rendering(tmp_path, sig):
    marker = tmp_path / "child.pid"
    nb = write_notebook(
        tmp_path / "nb" / "00_setup.ipynb", SETUP_PARAMS,
        "import os\nprint('token is', os.environ['HF_TOKEN'])",
        f"import subprocess, time\nchild = subprocess.Popen(['sleep', '1000'])\nopen({str(marker)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(1000)",
        "print('never reached')")
    runs, ws = tmp_path / "runs", tmp_path / "ws"
    env = {**os.environ, "HF_TOKEN": SECRET}
    proc = subprocess.Popen([sys.executable, "-c", RUN_SCRIPT, str(nb), str(_profile(tmp_path, ws)), str(runs)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    child = None
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (marker.exists() and marker.read_text()):
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.1)
        child = int(marker.read_text())
        time.sleep(0.5)  # papermill has saved the notebook up to the running cell
        start = time.monotonic()
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 9, out
        assert time.monotonic() - start < 30
        assert "interrupted by " + sig.name in out
        assert not alive(child)  # the kernel's own child went with the kernel's process group
        (run_dir,) = runs.iterdir()
        summary = json.loads((run_dir / "summary.json").read_text())
        entry = summary["notebooks"]["00_setup"]
        assert entry["status"] == "interrupted" and entry["error"] == f"interrupted by {sig.name}" and not summary["ok"]
        rendered = (run_dir / "00_setup.ipynb").read_text()
        assert SECRET not in rendered
        outputs = json.dumps([c.get("outputs", []) for c in json.loads(rendered)["cells"]])
        assert "token is ***" in outputs and "never reached" not in outputs  # saved up to the cell that was running
        html = (run_dir / "00_setup.html").read_text()
        assert SECRET not in html and len(html) > 1000
        with workspace_lock(ws):  # released
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
        if child and alive(child):
            os.kill(child, signal.SIGKILL)


def test_sigterm_during_a_pool_map_leaves_no_worker_writing(tmp_path):
    out = tmp_path / "images"
    out.mkdir()
    nb = write_notebook(
        tmp_path / "nb" / "00_setup.ipynb", SETUP_PARAMS,
        f"import sys\nsys.path.insert(0, {str(ROOT)!r})\nfrom pistachio_nb.dataset.pool import parallel_map\n"
        "from tests.test_reliability_pool import slow_write\n"
        f"n = sum(1 for _ in parallel_map(slow_write, [({str(out)!r}, i) for i in range(2000)], 2, 'd', 'tests.test_reliability_pool'))")
    proc = subprocess.Popen([sys.executable, "-c", RUN_SCRIPT, str(nb), str(_profile(tmp_path, tmp_path / "ws")),
                             str(tmp_path / "runs")], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(list(out.iterdir())) < 6:
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out_text, _ = proc.communicate(timeout=60)
        assert proc.returncode == 9, out_text
        written = len(list(out.iterdir()))
        workers = {int(p.stem.split("-")[1]) for p in out.iterdir()}
        time.sleep(2.0)
        assert len(list(out.iterdir())) == written  # nothing written once the run (and its lock) ended
        assert not [pid for pid in workers if alive(pid)]
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
