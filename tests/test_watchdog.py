"""The watchdog against a real HTTP server process that crashes or hangs on purpose."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time

import pytest

from pistachio_nb.files import read_jsonl
from pistachio_nb.paths import repo_root
from pistachio_nb.watchdog import WatchdogConfig, answers, recent_crashes, run_watchdog

FLAKY = repo_root() / "tests" / "data" / "flaky_server.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def watch(tmp_path):
    """Start the watchdog on the flaky server in a thread; yields (start(mode), cfg, state file)."""
    port, state = free_port(), tmp_path / "starts.txt"
    cfg = WatchdogConfig(url=f"http://127.0.0.1:{port}", crash_log=tmp_path / "crashes.jsonl", poll_interval=0.2,
                         poll_timeout=0.5, max_failed_polls=2, startup_grace=10.0, backoff_initial=0.2, stop_timeout=3.0)
    stop, result, threads, pids = threading.Event(), {}, [], []

    def start(mode: str, **kw):
        cmd = [sys.executable, str(FLAKY), str(port), str(state), mode]
        echo = lambda msg: pids.append(int(msg.split()[2].rstrip(":"))) if msg.startswith("started pid") else None
        t = threading.Thread(target=lambda: result.setdefault("crashes", run_watchdog(cmd, cfg, stop, echo=echo, **kw)))
        t.start()
        threads.append(t)
        return result

    yield start, cfg, state, stop, pids
    stop.set()
    for t in threads:
        t.join(15)
    for pid in pids:  # the watchdog left no child of its own running
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def starts(state) -> int:
    return int(state.read_text()) if state.exists() else 0


def test_restarts_after_a_crash_and_logs_it(watch):
    start, cfg, state, stop, pids = watch
    start("crash")
    assert wait_for(lambda: starts(state) == 2 and answers(cfg.url, 0.5)), "not restarted after the crash"
    (crash,) = read_jsonl(cfg.crash_log)
    assert crash["reason"] == "exited" and crash["exit_code"] == 3
    assert any("CUDA out of memory (simulated crash)" in line for line in crash["stderr_tail"])
    assert crash["restart_in_s"] == pytest.approx(0.2) and len(pids) == 2
    assert len(recent_crashes(cfg.crash_log)) == 1


def test_restarts_after_a_hang(watch):
    start, cfg, state, stop, pids = watch
    start("hang")
    assert wait_for(lambda: starts(state) == 2 and answers(cfg.url, 0.5)), "not restarted after the hang"
    (crash,) = read_jsonl(cfg.crash_log)
    assert crash["reason"] == "unresponsive" and crash["signal"] == "SIGTERM" and crash["exit_code"] == -15


def test_stop_terminates_only_its_child_and_logs_nothing(watch):
    start, cfg, state, stop, pids = watch
    result = start("healthy")
    assert wait_for(lambda: answers(cfg.url, 0.5))
    stop.set()
    assert wait_for(lambda: "crashes" in result)
    assert result["crashes"] == [] and not cfg.crash_log.exists()
    assert not answers(cfg.url, 0.5)


def test_max_restarts_gives_up_and_backs_off(tmp_path):
    cfg = WatchdogConfig(url=f"http://127.0.0.1:{free_port()}", crash_log=tmp_path / "c.jsonl", poll_interval=0.05,
                         backoff_initial=0.1, backoff_max=0.3)
    crashes = run_watchdog([sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(7)"], cfg,
                           max_restarts=3, echo=lambda msg: None)
    assert [c["exit_code"] for c in crashes] == [7, 7, 7, 7]
    assert [c["restart_in_s"] for c in crashes] == [0.1, 0.2, 0.3, None]  # doubling, capped, then give up
    assert crashes[0]["stderr_tail"] == ["boom"] and len(read_jsonl(cfg.crash_log)) == 4


def test_cli_watchdog_restarts_logs_in_workspace_and_stops_on_sigterm(tmp_path):
    """`pistachio watchdog --params ... -- CMD` as a real process: crash, restart, SIGTERM stops it and its child."""
    import signal
    import subprocess

    port, ws = free_port(), tmp_path / "ws"
    cmd = [sys.executable, "-m", "pistachio_nb.cli", "watchdog", "--params", str(repo_root() / "params" / "demo.yaml"),
           "--set", f"workspace={ws}", "--set", f"comfy_url=http://127.0.0.1:{port}", "--set", "comfy_timeout_s=0.5",
           "--poll-interval", "0.2", "--max-failed-polls", "2", "--backoff-max", "0.5",
           "--", sys.executable, str(FLAKY), str(port), str(tmp_path / "starts.txt"), "crash"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        log = ws / "setup" / "comfyui-crashes.jsonl"
        assert wait_for(lambda: log.exists() and answers(f"http://127.0.0.1:{port}", 0.5), 60), "no restart logged"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert read_jsonl(log)[0]["exit_code"] == 3
    assert not answers(f"http://127.0.0.1:{port}", 0.5)  # its child went down with it
    assert "restarting in" in proc.stderr.read()


def test_child_dies_when_the_watchdog_is_killed(tmp_path):
    """If the watchdog itself is SIGKILLed (OOM killer), its ComfyUI must not live on holding the port and VRAM."""
    import signal
    import subprocess

    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        "from pistachio_nb.watchdog import _die_with_parent\n"
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], preexec_fn=_die_with_parent)\n"
        "print(c.pid, flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)

    def gone() -> bool:
        try:
            return open(f"/proc/{child}/stat").read().split()[2] == "Z"
        except FileNotFoundError:
            return True
    assert wait_for(gone, 10)
