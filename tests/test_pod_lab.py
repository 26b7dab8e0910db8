"""`pistachio lab`: JupyterLab as a pod expects it (root allowed, token from the env), refusing a taken port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
import requests

from pistachio_nb.cli import main
from pistachio_nb.runner import EXIT_FAILED

from .conftest import ROOT

TOKEN = "lab-token-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_lab_serves_with_the_token_from_the_environment_only(tmp_path):
    port = _free_port()
    env = {**os.environ, "JUPYTER_PASSWORD": TOKEN, "HOME": str(tmp_path)}  # RunPod's variable name
    env.pop("JUPYTER_TOKEN", None)
    lab = subprocess.Popen([sys.executable, "-m", "pistachio_nb.cli", "lab", "--port", str(port), "--ip", "127.0.0.1"],
                           cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, answer = time.monotonic() + 120, None
        while time.monotonic() < deadline and lab.poll() is None:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/api/status", params={"token": TOKEN}, timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.5)
        assert answer is not None and answer.status_code == 200, lab.poll()
        assert requests.get(f"http://127.0.0.1:{port}/api/status", timeout=5).status_code == 403  # no token: no entry
        cmdline = open(f"/proc/{lab.pid}/cmdline", "rb").read().decode()
        assert "jupyter" in cmdline and "allow_root=True" in cmdline and TOKEN not in cmdline  # ps never shows it
    finally:
        lab.terminate()
        lab.wait(timeout=30)


def test_lab_refuses_a_taken_port_and_a_missing_token(monkeypatch, capsys):
    monkeypatch.setenv("JUPYTER_TOKEN", TOKEN)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["lab", "--port", str(busy.getsockname()[1])]) == EXIT_FAILED
    assert "in use" in capsys.readouterr().err
    for name in ("JUPYTER_TOKEN", "JUPYTER_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert main(["lab", "--port", str(_free_port())]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "no JupyterLab token" in err and "JUPYTER_TOKEN" in err
