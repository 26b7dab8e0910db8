"""`pistachio serve` killed (SIGKILL) mid-queue and started again loses no job and repeats none on ComfyUI."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import requests

from pistachio_testkit.comfy_exec import Behaviour
from pistachio_testkit.comfy_server import ComfyTestServer
from pistachio_testkit.real_comfyui import free_port
from tests.serve_world import ENV, submit, wait_done, write_profile


def start_api(profile, port: int, log) -> subprocess.Popen:
    """The real CLI in its own process; returns once /healthz answers."""
    proc = subprocess.Popen([sys.executable, "-m", "pistachio_nb.cli", "serve", "--params", str(profile), "--port", str(port)],
                            env={**os.environ, **ENV}, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "pistachio serve exited at start"
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok:
                return proc
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError("pistachio serve did not answer /healthz within 60 s")


def states(db) -> dict[str, str]:
    with sqlite3.connect(db) as con:
        return dict(con.execute("SELECT id, state FROM jobs").fetchall())


def test_a_killed_api_picks_up_every_queued_and_running_job_after_restart(tmp_path):
    with ComfyTestServer(behaviour=Behaviour(delay=0.5)) as comfy:
        profile = write_profile(tmp_path, [comfy.url], jobs_per_server=1)
        db, port = tmp_path / "ws" / "serve" / "jobs.sqlite3", free_port()
        url = f"http://127.0.0.1:{port}"
        with open(tmp_path / "api.log", "wb") as log:
            api = start_api(profile, port, log)
            ids = [submit(url, seed=s).json()["id"] for s in range(6)]
            deadline = time.monotonic() + 30
            # kill while one job is done, one is on the server (recorded submitted) and the rest are queued
            while not ("done" in states(db).values() and "submitted" in states(db).values()):
                assert time.monotonic() < deadline, states(db)
                time.sleep(0.01)
            os.kill(api.pid, signal.SIGKILL)
            api.wait(10)
            before = states(db)
            api = start_api(profile, port, log)
            try:
                jobs = [wait_done(url, i) for i in ids]
            finally:
                api.send_signal(signal.SIGTERM)
                api.wait(20)
        assert "queued" in before.values() and "submitted" in before.values()
        assert [j["state"] for j in jobs] == ["done"] * 6
        assert comfy.engine.number == 6  # the prompt in flight at the kill was picked up by id, not sent again
        assert sorted(p.name for p in (tmp_path / "ws" / "serve" / "images").iterdir()) == sorted(f"{i}_0.png" for i in ids)
        # SIGTERM: uvicorn shuts down cleanly (the dispatcher stops, the store closes), then exits by that signal
        assert api.returncode == -signal.SIGTERM and b"Application shutdown complete" in (tmp_path / "api.log").read_bytes()


def test_serve_without_keys_exits_2_before_listening_and_names_the_variable(tmp_path):
    profile = write_profile(tmp_path, ["http://127.0.0.1:9"])
    env = {k: v for k, v in os.environ.items() if k != "PISTACHIO_API_KEYS"}
    done = subprocess.run([sys.executable, "-m", "pistachio_nb.cli", "serve", "--params", str(profile), "--port", str(free_port())],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "PISTACHIO_API_KEYS" in done.stderr and "serving" not in done.stdout


def test_serve_with_a_workflow_that_does_not_fit_the_server_stops_before_listening(tmp_path):
    with ComfyTestServer() as comfy:
        profile = write_profile(tmp_path, [comfy.url], comfy_lora="not-on-the-server.safetensors")
        done = subprocess.run([sys.executable, "-m", "pistachio_nb.cli", "serve", "--params", str(profile), "--port",
                               str(free_port())], env={**os.environ, **ENV}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "not-on-the-server.safetensors" in done.stderr and "serving" not in done.stdout
