"""Run jobs over backend targets: least busy first, retries with backoff, every state change in the manifest.

Outputs are named by job id (`<job_id>_<n>.png`) and written atomically, so a job run twice (killed
between saving and recording) overwrites its own files: nothing lost, nothing duplicated.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from ..comfy.errors import ComfyConnectionError, ComfyTimeoutError
from ..files import write_bytes
from .jobs import Job
from .manifest import Manifest
from .pngmeta import a1111_parameters, with_text

RETRYABLE = (ComfyConnectionError, ComfyTimeoutError)


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
    failures: int = 0  # connection failures in a row: a dead server is probed less and less often
    done: int = 0

    def free(self, now: float) -> bool:
        return self.busy < self.capacity and now >= self.down_until


@dataclass
class Pending:
    job: Job
    backend: Backend
    attempts: int = 0
    ready_at: float = 0.0
    resume: tuple[str, str] | None = None  # (server, prompt_id) of a prompt an earlier run left queued


def pick_target(targets: list[Target], backend: Backend, now: float, prefer: str | None = None) -> Target | None:
    """The least busy free target of the job's backend (ours in flight + others' queue); `prefer` wins if free."""
    free = [t for t in targets if t.backend is backend and t.free(now)]
    for t in free:
        if t.name == prefer:
            return t
    return min(free, key=lambda t: (t.busy + t.external, t.done), default=None)


@dataclass
class Scheduler:
    manifest: Manifest
    images_dir: Path
    retries: int
    backoff: float
    meta: dict[str, Any] = field(default_factory=dict)  # batch settings recorded in every PNG

    def run(self, work: list[Pending], targets: list[Target]) -> None:
        """Run until every job is done or failed; connection problems are retried with exponential backoff."""
        bar = tqdm(total=len(work), desc="batch", unit="job")
        running: dict[Future, tuple[Pending, Target]] = {}
        with ThreadPoolExecutor(max_workers=max(1, sum(t.capacity for t in targets))) as pool:
            while work or running:
                now = time.monotonic()
                for item in [w for w in work if w.ready_at <= now]:
                    target = pick_target(targets, item.backend, now, item.resume[0] if item.resume else None)
                    if target is None:
                        continue
                    work.remove(item)
                    target.busy += 1
                    running[pool.submit(self._attempt, item, target)] = (item, target)
                times = [w.ready_at for w in work] + [tg.down_until for tg in targets]
                wake = [x for x in times if x > now]  # the next moment a waiting job or a resting server is due
                timeout = max(0.01, min(wake) - now) if wake else None
                finished, _ = wait(list(running), timeout=timeout, return_when=FIRST_COMPLETED)
                for fut in finished:
                    item, target = running.pop(fut)
                    target.busy -= 1
                    if self._settle(item, target, fut.exception()):
                        work.append(item)
                    else:
                        bar.update(1)
                        states = [r.get("state") for r in self.manifest.latest.values()]
                        bar.set_postfix(done=states.count("done"), failed=states.count("failed"))
        bar.close()

    def _settle(self, item: Pending, target: Target, error: BaseException | None) -> bool:
        """Record the attempt's end; True when the job goes back in the queue for another try."""
        if error is None:
            target.done, target.failures = target.done + 1, 0
            return False
        item.resume = None
        if isinstance(error, RETRYABLE) and item.attempts <= self.retries:
            delay = self.backoff * 2 ** (item.attempts - 1)
            item.ready_at = time.monotonic() + delay
            if isinstance(error, ComfyConnectionError):  # let the server come back before sending it more
                target.failures += 1
                target.down_until = time.monotonic() + self.backoff * 2 ** (target.failures - 1)
            self.manifest.record(item.job.job_id, state="retrying", error=_short(error), retry_in=round(delay, 2))
            return True
        self.manifest.record(item.job.job_id, state="failed", error=_short(error))
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
