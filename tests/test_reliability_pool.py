"""Decode-pool workers die with the process that made the pool, even when it is SIGKILLed mid-map."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pistachio_nb.paths import repo_root

MAP_SCRIPT = """
import sys
from pistachio_nb.dataset.pool import parallel_map
from tests.test_reliability_pool import slow_write
for _ in parallel_map(slow_write, [(sys.argv[1], i) for i in range(400)], 2, "t", "tests.test_reliability_pool"):
    pass
"""


def slow_write(arg: tuple[str, int]) -> int:
    """A worker job that takes a while and leaves a file named by its worker's pid (like a decoded image)."""
    folder, i = arg
    time.sleep(0.1)
    Path(folder, f"{i}-{os.getpid()}.out").write_text("x")
    return i


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (ProcessLookupError, FileNotFoundError):
        return False


def test_workers_stop_writing_and_exit_when_the_owner_is_killed(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", MAP_SCRIPT, str(tmp_path)], cwd=repo_root())
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list(tmp_path.iterdir())) < 6:
            time.sleep(0.05)
        first = int(next(tmp_path.iterdir()).stem.split("-")[1])
        server = int(Path(f"/proc/{first}/stat").read_text().rsplit(")", 1)[1].split()[1])  # the forkserver
        assert server != proc.pid
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        time.sleep(0.5)  # a worker may finish the one file it was writing
        written = len(list(tmp_path.iterdir()))
        workers = {int(p.stem.split("-")[1]) for p in tmp_path.iterdir()} | {server}
        assert len(workers) >= 1 and written >= 6
        time.sleep(2.0)
        assert len(list(tmp_path.iterdir())) == written  # nothing written after the owner died
        assert not [pid for pid in workers if alive(pid)]  # the workers and the forkserver are gone
    finally:
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
