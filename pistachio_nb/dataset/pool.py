"""Map a function over many small jobs on all cores, streaming results (nothing big kept in memory)."""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
PARENT_POLL_SECONDS = 0.2  # the portable fallback's check interval


def _owner_gone(owner: int) -> bool:
    try:
        os.kill(owner, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a killed owner stays a zombie until its parent reaps it: dead all the same
        return Path(f"/proc/{owner}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return False


def _watch_owner(owner: int) -> None:
    """Block until `owner` exits, then end this worker at once (no half-written file after the run ended)."""
    try:
        fd = os.pidfd_open(owner)  # Linux >= 5.3: readable when the owner exits, no polling, no pid reuse race
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        select.select([fd], [], [])
    else:
        while not _owner_gone(owner):
            time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)


def die_with_owner(owner: int) -> None:
    """Worker initializer: this worker ends when the process that made the pool (`owner`) ends, however it ends.

    Linux: PR_SET_PDEATHSIG makes the kernel SIGKILL the worker when its parent (the forkserver, or the owner
    under spawn) dies. Everywhere: a daemon thread waits for the owner itself (pidfd, else a pid poll every
    0.2 s), since under forkserver the owner is not the worker's parent. The forkserver then exits by itself:
    it stops once the owner and every worker are gone.
    """
    if _owner_gone(owner):
        os._exit(1)
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the thread below is the whole guard
    threading.Thread(target=_watch_owner, args=(owner,), name="die-with-owner", daemon=True).start()


def opencv_one_thread() -> None:
    """Keep OpenCV, once imported, to one thread: there is a worker per core already, and its threads would
    fight the other workers. Called when a worker starts, and by a job that imports OpenCV itself later."""
    if (cv2 := sys.modules.get("cv2")) is not None:
        cv2.setNumThreads(1)


def start_worker(owner: int) -> None:
    """Worker initializer: end with the owner (`die_with_owner`), OpenCV on one thread."""
    die_with_owner(owner)
    opencv_one_thread()


def effective_workers(workers: int) -> int:
    """`workers` as given, or every core this process may use when it is 0."""
    return workers if workers > 0 else max(1, len(os.sched_getaffinity(0)))


def parallel_map(fn: Callable[[Any], T], items: Sequence[Any], workers: int, desc: str, preload: str) -> Iterator[T]:
    """Results of `fn(item)` in input order; in-process for one worker, else a forkserver process pool.

    forkserver (not fork) because the caller is often a Jupyter kernel with threads; `preload` is the
    module the workers import once in the server, so each worker starts in milliseconds. Workers end with
    this process even when it is SIGKILLed (`die_with_owner`); the forkserver is stopped when the map ends,
    so it never outlives the run (nor holds its memory in a kernel that stays open).
    """
    from tqdm.auto import tqdm  # here, not at the top: workers import this module and need no progress bars

    n = min(effective_workers(workers), len(items))
    bar = dict(total=len(items), desc=desc, unit="img", mininterval=1.0)
    if n <= 1:
        yield from tqdm(map(fn, items), **bar)
        return
    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload([preload])
    chunk = max(1, min(16, len(items) // (n * 8)))
    try:
        with ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=start_worker, initargs=(os.getpid(),)) as pool:
            yield from tqdm(pool.map(fn, items, chunksize=chunk), **bar)
    finally:
        if method == "forkserver":
            stop_forkserver()


def stop_forkserver() -> None:
    """End this process's forkserver once its workers are gone (the next pool starts a fresh one).

    The standard library has no public call for it; `ForkServer._stop` (CPython 3.8+) closes the pipe the
    server watches and reaps it.
    """
    from multiprocessing import forkserver

    stop = getattr(forkserver._forkserver, "_stop", None)
    if stop is not None:
        stop()
