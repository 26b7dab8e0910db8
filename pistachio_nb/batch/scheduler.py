"""Run jobs over backend targets: least busy first, retries with backoff, every state change in the manifest.

Outputs are named by job id (`<job_id>_<n>.png`) and written atomically, so a job run twice (killed
between saving and recording) overwrites its own files: nothing lost, nothing duplicated.

A server that refuses connections is rested like a circuit breaker (Envoy's outlier ejection, resilience4j):
open for `backoff_seconds`, doubling per outage up to `REST_CAP_SECONDS`; then half-open, one probe job at a
time, while live servers take the rest (a probe refused then costs the job no attempt). With no live server
left, a due job waits a capped while for one and then that wait counts as a failed attempt, so a job fails on
its own retry schedule instead of waiting for a dead server to return (the bound is in `Scheduler.run`).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from ..comfy.errors import ComfyConnectionError, ComfyTimeoutError
from ..files import write_bytes
from .jobs import Job
from .pngmeta import a1111_parameters, with_text

RETRYABLE = (ComfyConnectionError, ComfyTimeoutError)
FEED_POLL_SECONDS = 0.05  # how often a fed scheduler (the generation API) looks for new jobs when idle
REST_CAP_SECONDS = 30.0  # longest wait before a job's retry or a dead server's next probe (unless backoff_seconds is longer)


class StateLog(Protocol):
    """Where every job state change goes: the batch's JSONL manifest, or the generation API's job store."""

    def record(self, job_id: str, /, **fields: Any) -> Any: ...


class Backend(Protocol):
    name: str

    @property
    def targets(self) -> dict[str, int]: ...

    def load(self, target: str) -> int: ...

    def settings(self) -> dict[str, Any]: ...

    def run(self, job: Job, target: str, on_submitted: Any, resume: str | None = None) -> Any: ...


@dataclass
class Target:
    backend: Backend
    name: str
    capacity: int
    busy: int = 0  # our jobs in flight there
    external: int = 0  # prompts others had queued there when we started
    down_until: float = 0.0
    failures: int = 0  # outages in a row: a dead server is probed less and less often, up to the cap
    done: int = 0

    def free(self, now: float) -> bool:
        """Rested and below capacity; a server that failed takes one (probe) job at a time until one succeeds."""
        return self.busy < (1 if self.failures else self.capacity) and now >= self.down_until


@dataclass
class Pending:
    job: Job
    backend: Backend
    attempts: int = 0
    ready_at: float = 0.0
    resume: tuple[str, str] | None = None  # (server, prompt_id) of a prompt an earlier run left queued
    probe: bool = False  # this attempt went to a server that had failed (half-open)
    stranded: float | None = None  # since when this due job has found no live server
    failed: bool = False  # ended failed (for the progress bar's counts)


def pick_target(targets: list[Target], backend: Backend, now: float, prefer: str | None = None) -> Target | None:
    """The least busy free target of the job's backend (ours in flight + others' queue); `prefer` wins if free.

    Healthy targets come first: a server that failed is probed only when no healthy one is free.
    """
    free = [t for t in targets if t.backend is backend and t.free(now)]
    for t in free:
        if t.name == prefer:
            return t
    return min(free, key=lambda t: (t.failures > 0, t.busy + t.external, t.done), default=None)


@dataclass
class Scheduler:
    manifest: StateLog
    images_dir: Path
    retries: int
    backoff: float
    meta: dict[str, Any] = field(default_factory=dict)  # batch settings recorded in every PNG
    progress: bool = True  # a tqdm bar (off for the API's endless run)

    def run(self, work: list[Pending], targets: list[Target], feed: Callable[[int], list[Pending]] | None = None,
            stop: threading.Event | None = None) -> None:
        """Run until every job is done or failed; connection problems are retried with capped exponential backoff.

        With `feed` (the generation API), `feed(n)` gives up to n new jobs whenever slots are free, and the loop runs
        until `stop` is set; the jobs still in flight then are left to their threads (their state is in the log).

        Bound: with every server of its backend dead, a job fails after `retries` + 1 attempts. Before attempt
        k (k = 1..retries+1) it waits its delay min(backoff * 2**(k-2), cap) (none before the first) and then at
        most min(backoff * 2**(k-1), cap) for a server to come back, where cap = max(REST_CAP_SECONDS, backoff);
        add each attempt's own time (a refused connection returns at once, an unreachable host after the 3.05 s
        connect timeout). So at most (2 * retries + 1) * cap + (retries + 1) * 3.05 s; for the demo's 3 retries at
        1 s that is 22 s + 12 s, for the pod's 5 retries at 10 s 270 s + 18 s. Live servers take the jobs meanwhile.
        """
        quiet = not self.progress or (not work and feed is None)  # nothing to do: no "0job" bar left as stderr on the page
        self._bar, self._targets, self._outcomes = tqdm(total=len(work), desc="batch", unit="job", disable=quiet), targets, Counter()
        running: dict[Future, tuple[Pending, Target]] = {}
        fed = feed is not None
        stop = stop or threading.Event()
        pool = ThreadPoolExecutor(max_workers=max(1, sum(t.capacity for t in targets)))
        try:
            while (work or running or fed) and not (fed and stop.is_set()):
                free = sum(t.capacity for t in targets) - len(running) - len(work)
                if fed and free > 0:
                    new = feed(free)
                    work += new
                    self._bar.total += len(new)
                now = time.monotonic()
                for item in [w for w in work if w.ready_at <= now]:
                    target = pick_target(targets, item.backend, now, item.resume[0] if item.resume else None)
                    if target is None:
                        if any(t.backend is item.backend and not t.failures for t in targets):
                            item.stranded = None  # a live server is busy: plain queueing
                        elif item.stranded is None:
                            item.stranded = now
                        elif now >= item.stranded + self._patience(item):
                            self._refuse(item, work, targets)  # nothing live for too long: count the attempt
                        continue
                    item.stranded = None
                    work.remove(item)
                    target.busy += 1
                    item.probe = target.failures > 0
                    running[pool.submit(self._attempt, item, target)] = (item, target)
                now = time.monotonic()
                times = ([w.ready_at for w in work] + [w.stranded + self._patience(w) for w in work if w.stranded is not None]
                         + [tg.down_until for tg in targets])
                wake = [x for x in times if x > now]  # the next moment a waiting job or a resting server is due
                timeout = max(0.01, min(wake) - now) if wake else None
                if fed:
                    timeout = min(timeout or FEED_POLL_SECONDS, FEED_POLL_SECONDS)
                finished, _ = wait(list(running), timeout=timeout, return_when=FIRST_COMPLETED)
                if not running and fed:
                    stop.wait(timeout)
                for fut in finished:
                    item, target = running.pop(fut)
                    target.busy -= 1
                    if self._settle(item, target, fut.exception()):
                        work.append(item)
                    else:
                        self._progress(item)
        finally:
            pool.shutdown(wait=not stop.is_set(), cancel_futures=True)
            self._bar.close()

    def _cap(self) -> float:
        return max(REST_CAP_SECONDS, self.backoff)

    def _patience(self, item: Pending) -> float:
        """How long a due job waits for a dead server to come back before that wait counts as a failed attempt."""
        return min(self.backoff * 2 ** item.attempts, self._cap())

    def _progress(self, item: Pending) -> None:
        self._outcomes["failed" if item.failed else "done"] += 1
        self._bar.update(1)
        self._bar.set_postfix(done=self._outcomes["done"], failed=self._outcomes["failed"])

    def _refuse(self, item: Pending, work: list[Pending], targets: list[Target]) -> None:
        """No server of the job's backend came back within the job's patience: a failed attempt."""
        item.attempts, item.stranded = item.attempts + 1, None
        down = ", ".join(t.name for t in targets if t.backend is item.backend)
        error = ComfyConnectionError(f"no live server (all resting after connection failures): {down}",
                                     fix="start ComfyUI on the pod, or fix `servers`")
        if not self._settle(item, None, error):
            work.remove(item)
            self._progress(item)

    def _settle(self, item: Pending, target: Target | None, error: BaseException | None) -> bool:
        """Record the attempt's end; True when the job goes back in the queue for another try."""
        now = time.monotonic()
        cap = self._cap()
        if error is None:
            target.done, target.failures, target.down_until = target.done + 1, 0, 0.0
            return False
        item.resume = None
        if target is not None and isinstance(error, ComfyConnectionError):
            if now >= target.down_until:
                target.failures += 1  # once per outage, not once per job that was in flight there
                target.down_until = now + min(self.backoff * 2 ** (target.failures - 1), cap)
            if item.probe and any(t.backend is item.backend and not t.failures for t in self._targets):
                item.attempts -= 1  # a probe refused while a live server exists: the server's failure, not the job's
                item.ready_at = now
                self.manifest.record(item.job.job_id, state="retrying", error=_short(error), retry_in=0.0)
                return True
        if isinstance(error, RETRYABLE) and item.attempts <= self.retries:
            delay = min(self.backoff * 2 ** (item.attempts - 1), cap)
            item.ready_at = now + delay
            self.manifest.record(item.job.job_id, state="retrying", error=_short(error), retry_in=round(delay, 2),
                                 attempts=item.attempts)
            return True
        self.manifest.record(item.job.job_id, state="failed", error=_short(error), attempts=item.attempts)
        item.failed = True
        return False

    def _attempt(self, item: Pending, target: Target) -> None:
        job = item.job
        item.attempts += 1
        start = time.monotonic()
        resume = item.resume[1] if item.resume and item.resume[0] == target.name else None
        extra = dict(server=target.name, attempts=item.attempts, backend=item.backend.name, **job.fields())

        def started(prompt_id: str | None) -> None:  # one fsynced line when the work is handed over
            state = "submitted" if prompt_id else "running"
            self.manifest.record(job.job_id, state=state, prompt_id=prompt_id, **extra)

        output = item.backend.run(job, target.name, started, resume=resume)
        files = [self._save(job, n, png, output.graph, item.backend) for n, png in enumerate(output.images)]
        self.manifest.record(job.job_id, state="done", files=files, seconds=round(time.monotonic() - start, 3),
                             error=None, **output.info)

    def _save(self, job: Job, n: int, png: bytes, graph: dict | None, backend: Backend) -> str:
        """Write one image as `<job_id>_<n>.png` with prompt, seed and workflow in its metadata."""
        if hasattr(backend, "save"):  # a backend whose outputs are not PNGs (video) writes them itself
            return backend.save(job, n, png, graph, self.images_dir, self.meta)
        settings = backend.settings()
        texts = {
            "parameters": a1111_parameters(job.prompt, job.negative, settings["steps"], settings["cfg"], job.seed,
                                           job.width, job.height, settings.get("checkpoint") or settings.get("model", ""),
                                           settings.get("lora") and Path(settings["lora"]).name, job.lora_strength),
            "pistachio": json.dumps({**job.fields(), **settings, **self.meta}, default=str),
        }
        if graph is not None:
            texts["prompt"] = json.dumps(graph)  # ComfyUI reloads the workflow from this key
        name = f"{job.job_id}_{n}.png"
        write_bytes(self.images_dir / name, with_text(png, texts))
        return name


def _short(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:2000]
