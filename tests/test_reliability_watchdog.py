"""The watchdog leaves no grandchildren behind: each run is its own process group and stops as a whole."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from pistachio_nb.watchdog import WatchdogConfig, run_watchdog
from tests.test_watchdog import free_port, wait_for


def alive(pid: int) -> bool:
    """Running (a zombie that only waits for its reaper counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def pids_in(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def config(tmp_path: Path, **over) -> WatchdogConfig:
    values = dict(url=f"http://127.0.0.1:{free_port()}", crash_log=tmp_path / "crashes.jsonl", poll_interval=0.05,
                  poll_timeout=0.2, startup_grace=60.0, backoff_initial=0.05, backoff_max=0.1, stop_timeout=1.0)
    return WatchdogConfig(**{**values, **over})


def test_a_crashing_command_leaves_no_background_child_per_restart(tmp_path):
    pids = tmp_path / "pids"
    command = ["bash", "-c", f"sleep 1000 & echo $! >> {pids}; sleep 0.2; exit 3"]  # the child dies, its sleep stays
    try:
        crashes = run_watchdog(command, config(tmp_path), max_restarts=2, echo=lambda msg: None)
        assert [c["exit_code"] for c in crashes] == [3, 3, 3]
        assert len(pids_in(pids)) == 3
        assert wait_for(lambda: not any(alive(p) for p in pids_in(pids)), 5), [p for p in pids_in(pids) if alive(p)]
    finally:
        for pid in pids_in(pids):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_stopping_the_watchdog_stops_the_whole_group_even_what_ignores_sigterm(tmp_path):
    pids = tmp_path / "pids"
    # bash and its sleep ignore SIGTERM: only the SIGKILL after stop_timeout ends them
    command = ["bash", "-c", f"trap '' TERM; sleep 1000 & echo $! >> {pids}; echo $$ >> {pids}; wait"]
    stop = threading.Event()
    runner = threading.Thread(target=run_watchdog, args=(command, config(tmp_path, stop_timeout=0.5), stop),
                              kwargs=dict(echo=lambda msg: None))
    try:
        runner.start()
        assert wait_for(lambda: len(pids_in(pids)) == 2, 10)
        stop.set()
        runner.join(10)
        assert not runner.is_alive()
        assert wait_for(lambda: not any(alive(p) for p in pids_in(pids)), 5), [p for p in pids_in(pids) if alive(p)]
    finally:
        stop.set()
        for pid in pids_in(pids):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
