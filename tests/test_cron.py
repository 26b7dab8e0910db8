"""The README's cron line, run as cron runs it: `env -i` with only PATH and HOME, on the demo profile.

Substituted, and nothing else: the clone's path, the profile (the demo's, with a temp workspace), the
notebook (00_setup: quick, needs nothing before it), the log file, and a temp `--runs-dir`.
"""

from __future__ import annotations

import shlex
import subprocess

import pytest
import yaml

from .conftest import ROOT
from .readme_commands import cron_lines

SECRET = "hf_CronSecret0123456789abc"


@pytest.fixture(scope="module")
def cron_command() -> str:
    (entry,) = cron_lines()
    fields, command = entry
    assert len(fields) == 5 and "%" not in command  # cron: five time fields; an unescaped % would cut the line
    assert "2>&1" not in command and ">>" not in command  # no shell plumbing to get wrong
    return command


def _profile(tmp_path, **setup) -> str:
    data = yaml.safe_load((ROOT / "params" / "demo.yaml").read_text())
    data["common"]["workspace"] = str(tmp_path / "ws")
    data["00_setup"].update(workflows_dir=str(tmp_path / "ws" / "workflows"), **setup)
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _run_cron(command: str, tmp_path, profile: str) -> tuple[subprocess.CompletedProcess, str]:
    home = tmp_path / "home"
    env_file = home / ".config" / "pistachio" / "env"
    env_file.parent.mkdir(parents=True, exist_ok=True)
    env_file.write_text(f"HF_TOKEN={SECRET}\n")
    env_file.chmod(0o600)
    log = tmp_path / "cron.log"
    command = (command.replace("cd /workspace/pistachio", f"cd {shlex.quote(str(ROOT))}")
               .replace("params/pod.yaml", profile).replace("06_batch_generation", "00_setup")
               .replace("outputs/cron.log", str(log)) + f" --runs-dir {tmp_path / 'runs'}")
    proc = subprocess.run(["env", "-i", "PATH=/usr/bin:/bin", f"HOME={home}", "/bin/sh", "-c", command],
                          capture_output=True, text=True, timeout=600)
    return proc, log.read_text(encoding="utf-8") if log.exists() else ""


def test_cron_line_gates_on_health_and_logs_the_run(cron_command, tmp_path):
    proc, log = _run_cron(cron_command, tmp_path, _profile(tmp_path))
    assert proc.returncode == 0, log + proc.stderr
    assert "health gate: running the 00_setup checks" in log and "writable: workspace" in log
    assert "0 FAIL" in log
    assert "running 00_setup ..." in log and "[00_setup cell " in log  # progress, cell by cell
    assert "ok: run folder" in log and SECRET not in log + proc.stdout + proc.stderr
    assert len(list((tmp_path / "runs").iterdir())) == 1


def test_a_failing_gate_is_logged_and_stops_the_batch(cron_command, tmp_path):
    proc, log = _run_cron(cron_command, tmp_path, _profile(tmp_path, min_free_gb=10**9))
    assert proc.returncode == 1
    assert "FAIL" in log and "disk: workspace" in log  # the health table, with the failing row
    assert "error: " in log and "health check(s) failed" in log and "disk: workspace" in log.split("error: ")[1]
    assert "running 00_setup" not in log and not (tmp_path / "runs").exists()
