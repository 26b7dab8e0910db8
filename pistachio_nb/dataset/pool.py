"""Map a function over many small jobs on all cores, streaming results (nothing big kept in memory)."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def effective_workers(workers: int) -> int:
    """`workers` as given, or every core this process may use when it is 0."""
    return workers if workers > 0 else max(1, len(os.sched_getaffinity(0)))


def parallel_map(fn: Callable[[Any], T], items: Sequence[Any], workers: int, desc: str, preload: str) -> Iterator[T]:
    """Results of `fn(item)` in input order; in-process for one worker, else a forkserver process pool.

    forkserver (not fork) because the caller is often a Jupyter kernel with threads; `preload` is the
    module the workers import once in the server, so each worker starts in milliseconds.
    """
    from tqdm.auto import tqdm  # here, not at the top: workers import this module and need no progress bars

    n = effective_workers(workers)
    bar = dict(total=len(items), desc=desc, unit="img", mininterval=1.0)
    if n == 1 or len(items) < 2:
        yield from tqdm(map(fn, items), **bar)
        return
    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload([preload])
    chunk = max(1, min(16, len(items) // (n * 8)))
    with ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
        yield from tqdm(pool.map(fn, items, chunksize=chunk), **bar)
