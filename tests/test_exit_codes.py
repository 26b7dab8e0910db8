"""The CLI's exit code keeps the error kind of a notebook's failing cell (cron tells drift from bad params)."""

from __future__ import annotations

import nbformat
import pytest

from pistachio_nb.cli import exit_code_for, main
from pistachio_nb.runner import EXIT_DRIFT, EXIT_FAILED, EXIT_PARAMS

from .conftest import ROOT, write_notebook

SETUP_PARAMS = next(c.source for c in nbformat.read(str(ROOT / "notebooks" / "00_setup.ipynb"), as_version=4).cells
                    if "parameters" in c.metadata.get("tags", []))


@pytest.mark.parametrize("raise_line, code", [
    ("from pistachio_nb.errors import EnvDriftError\nraise EnvDriftError('torch 2.9 installed, 2.13 pinned')", EXIT_DRIFT),
    ("from pistachio_nb.errors import ParamsError\nraise ParamsError('rank must be a power of two')", EXIT_PARAMS),
    ("raise ValueError('an ordinary bug')", EXIT_FAILED),
])
def test_failing_cell_exception_gives_its_exit_code(tmp_path, raise_line, code):
    nb = write_notebook(tmp_path / "nb" / "00_setup.ipynb", SETUP_PARAMS, raise_line)
    profile = tmp_path / "p.yaml"
    profile.write_text(f"common:\n  workspace: {tmp_path / 'ws'}\n")
    assert main(["run", str(nb), "--params", str(profile), "--runs-dir", str(tmp_path / "runs")]) == code
    assert len(list((tmp_path / "runs").glob("*/00_setup.html"))) == 1  # the failing run is still rendered there


def test_unknown_or_missing_error_type_is_a_plain_failure():
    assert exit_code_for(None) == exit_code_for("SomethingElse") == EXIT_FAILED
    assert exit_code_for("InputDataError") == EXIT_FAILED and exit_code_for("ParamsError") == EXIT_PARAMS


def test_cli_run_stopped_by_sigterm_exits_143_like_a_shell_says(tmp_path):
    import signal
    import subprocess
    import sys

    nb = write_notebook(tmp_path / "nb" / "00_setup.ipynb", SETUP_PARAMS, "import time\ntime.sleep(120)")
    profile = tmp_path / "p.yaml"
    profile.write_text(f"common:\n  workspace: {tmp_path / 'ws'}\n")
    proc = subprocess.Popen([sys.executable, "-m", "pistachio_nb.cli", "run", str(nb), "--params", str(profile),
                             "--runs-dir", str(tmp_path / "runs")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "running 00_setup" in proc.stdout.readline()
        import time

        time.sleep(4)  # the kernel is up and in its sleep cell
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM and "interrupted" in err
