"""Process groups: signal a whole group and tell whether any of it still runs (runner and watchdog share these)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def signal_group(pgid: int, sig: int) -> None:
    """Signal every process of group `pgid`; a group already gone is fine."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def group_alive(pgid: int) -> bool:
    """True while a process of the group is alive (zombies waiting for a reaper do not count)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    for stat in Path("/proc").glob("[0-9]*/stat"):  # Linux: look past zombies; elsewhere trust killpg
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return not Path("/proc/self/stat").exists()


def stop_groups(groups: list[int], grace_s: float = 5.0) -> None:
    """SIGTERM each group, SIGKILL what is still there after `grace_s` (what systemd does when stopping a unit)."""
    for pgid in groups:
        signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while any(group_alive(g) for g in groups) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pgid in groups:
        if group_alive(pgid):
            signal_group(pgid, signal.SIGKILL)
