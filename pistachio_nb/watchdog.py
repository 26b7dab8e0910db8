"""ComfyUI watchdog: start the command, poll `/system_stats`, restart it when it exits or stops answering,
with backoff, and append every crash (time, exit code, last stderr lines) to a JSONL crash log.

It binds no port and signals only what it started: the command runs in its own session, and stopping it
stops that whole process group (a wrapper script's server and anything else it forked go with it).
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import requests

from .files import append_jsonl, read_jsonl
from .procgroup import group_alive, signal_group
from .secrets import scrub

CRASH_LOG = "setup/comfyui-crashes.jsonl"  # below the workspace: `pistachio watchdog` writes it, health reads it


@dataclass(frozen=True)
class WatchdogConfig:
    """How to watch: what to poll, how patient to be, how long to back off, where to log crashes."""

    url: str                        # ComfyUI base URL, e.g. http://127.0.0.1:8188
    crash_log: Path                 # JSONL file, one line per crash
    poll_interval: float = 10.0     # seconds between health polls
    poll_timeout: float = 10.0      # seconds one poll may take
    max_failed_polls: int = 3       # consecutive unanswered polls that count as a hang
    startup_grace: float = 180.0    # seconds a fresh start may stay silent (model loading, custom nodes)
    backoff_initial: float = 5.0    # first restart delay; doubles while it keeps crashing before answering
    backoff_max: float = 300.0      # restart delay ceiling
    stop_timeout: float = 15.0      # SIGTERM, then SIGKILL after this many seconds
    stderr_lines: int = 40          # stderr lines kept per crash


try:  # resolved before any fork: the child runs as little Python as possible before exec
    _PRCTL = ctypes.CDLL("libc.so.6", use_errno=True).prctl
except OSError:  # not Linux: an orphan is possible if the watchdog itself is SIGKILLed
    _PRCTL = None


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if the watchdog itself is killed, so no orphan keeps the port and VRAM."""
    if _PRCTL is not None:
        _PRCTL(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG


class Child:
    """The one process the watchdog owns, with a rolling tail of its stderr (also echoed to ours)."""

    def __init__(self, command: list[str], tail_lines: int) -> None:
        self.started = time.monotonic()
        self.tail: deque[str] = deque(maxlen=tail_lines)
        # its own session and process group: stop() signals the group, so what it forked dies with it
        self.proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, errors="replace", bufsize=1,
                                     preexec_fn=_die_with_parent, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            line = scrub(line)  # once: the echo and the crash log's tail see the same scrubbed line
            self.tail.append(line.rstrip("\n"))
            sys.stderr.write(line)

    def stop(self, timeout: float) -> int:
        """SIGTERM the child's whole process group, SIGKILL what is left after `timeout`; returns its exit code.

        Like systemd's KillMode=control-group: the group goes even when the child itself already exited,
        so a grandchild it left (`sleep 1000 &`) does not outlive it, once per restart.
        """
        deadline = time.monotonic() + timeout
        signal_group(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        while group_alive(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.proc.poll() is None or group_alive(self.proc.pid):
            signal_group(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._reader.join(2.0)
        return self.proc.returncode


def answers(url: str, timeout: float) -> bool:
    """True when `GET /system_stats` returns 200 within the timeout."""
    try:
        return requests.get(f"{url.rstrip('/')}/system_stats", timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def supervise(child: Child, cfg: WatchdogConfig, stop: threading.Event) -> tuple[str, bool]:
    """Watch one run until it exits, hangs or we are stopped; returns (reason, answered at least once)."""
    answered, failed = False, 0
    while not stop.is_set():
        if child.proc.poll() is not None:
            return "exited", answered
        if answers(cfg.url, cfg.poll_timeout):
            answered, failed = True, 0
        elif answered or time.monotonic() - child.started > cfg.startup_grace:
            failed += 1
            if failed >= cfg.max_failed_polls:
                child.stop(cfg.stop_timeout)
                return "unresponsive", answered
        if child.proc.poll() is None:
            stop.wait(cfg.poll_interval)
    return "stopped", answered


def crash_record(child: Child, reason: str, command: list[str], restart_in: float | None) -> dict:
    """One crash log line: when, why, exit code (negative = killed by that signal), last stderr lines."""
    code = child.proc.returncode
    signame = signal.Signals(-code).name if code is not None and code < 0 and -code in signal.valid_signals() else None
    return {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "reason": reason, "exit_code": code,
        "signal": signame, "uptime_s": round(time.monotonic() - child.started, 1), "pid": child.proc.pid,
        "command": [scrub(arg) for arg in command], "restart_in_s": restart_in,
        "stderr_tail": [scrub(line) for line in child.tail],
    }


def run_watchdog(command: list[str], cfg: WatchdogConfig, stop: threading.Event | None = None,
                 max_restarts: int | None = None, echo=lambda msg: print(f"watchdog: {msg}", file=sys.stderr, flush=True)) -> list[dict]:
    """Keep `command` running and answering; returns the crash records (runs until `stop` is set)."""
    stop = stop or threading.Event()
    crashes: list[dict] = []
    quick_crashes = 0  # crashes in a row that never answered a poll: these back off exponentially
    while not stop.is_set():
        child = Child(command, cfg.stderr_lines)
        echo(scrub(f"started pid {child.proc.pid}: {' '.join(command)}"))
        reason, answered = supervise(child, cfg, stop)
        if reason == "stopped":
            child.stop(cfg.stop_timeout)
            break
        child.stop(cfg.stop_timeout)  # reap (and drain stderr) after an exit
        quick_crashes = 0 if answered else quick_crashes + 1
        last = max_restarts is not None and len(crashes) >= max_restarts
        delay = None if last else min(cfg.backoff_initial * 2 ** max(quick_crashes - 1, 0), cfg.backoff_max)
        record = crash_record(child, reason, command, delay)
        append_jsonl(cfg.crash_log, record)
        crashes.append(record)
        echo(f"ComfyUI {reason} (exit code {record['exit_code']}) after {record['uptime_s']}s; "
             + ("giving up (max restarts)" if last else f"restarting in {delay:.0f}s") + f"; logged to {cfg.crash_log}")
        if last or stop.wait(delay):
            break
    return crashes


def recent_crashes(crash_log: str | Path, hours: float = 24.0) -> list[dict]:
    """Crash records from the last `hours` (the health check shows them)."""
    cutoff = datetime.now(timezone.utc).timestamp() - hours * 3600
    return [r for r in read_jsonl(crash_log) if datetime.fromisoformat(r["time"]).timestamp() >= cutoff]
