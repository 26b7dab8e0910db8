"""The dispatcher: jobs from the store onto the ComfyUI servers through the batch scheduler, one thread.

Same scheduler as 06_batch_generation (least busy server first, health-aware resting, retries with capped
backoff, PNGs with prompt/seed/workflow metadata named by job id); the store stands in for its manifest.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..batch.backends import ComfyBackend
from ..batch.jobs import Job
from ..batch.params import BatchParams
from ..batch.run import build_backends
from ..batch.scheduler import Pending, Scheduler, Target
from ..comfy.errors import ComfyConnectionError
from .store import JobStore, StoredJob

FINAL = ("done", "failed")


def job_of(stored: StoredJob) -> Job:
    r = stored.request
    return Job(job_id=stored.id, prompt=r["prompt"], negative=r["negative"], seed=r["seed"],
               lora_strength=r["lora_strength"], width=r["width"], height=r["height"], source=f"api:{stored.key_id}")


def backends_for(batch: BatchParams, workflows: list[str]) -> dict[str, ComfyBackend]:
    """One ComfyUI backend per allowed workflow, built as 06 builds its own (same checkpoint, LoRA, steps)."""
    out = {}
    for name in workflows:
        (backend,) = build_backends(batch.model_copy(update={"workflow": name, "backends": ["comfyui"]}))
        backend.name = f"comfyui:{name}"
        out[name] = backend
    return out


@dataclass
class StoreLog:
    """The scheduler's state log, written to the store; calls `on_final(job_id)` when a job ends."""

    store: JobStore
    on_final: Callable[[str], None]

    def record(self, job_id: str, /, **fields: Any) -> None:
        self.store.record(job_id, **fields)
        if fields.get("state") in FINAL:
            self.on_final(job_id)


@dataclass
class Dispatcher:
    batch: BatchParams
    store: JobStore
    workflows: list[str]
    images_dir: Path
    on_final: Callable[[str], None] = lambda job_id: None
    backends: dict[str, ComfyBackend] = field(init=False, default_factory=dict)
    down: list[str] = field(init=False, default_factory=list)
    _stop: threading.Event = field(init=False, default_factory=threading.Event)
    _thread: threading.Thread | None = field(init=False, default=None)

    def check_workflows(self, sample: Job) -> list[str]:
        """Each workflow filled with a sample job and checked against every reachable server; returns servers down."""
        down: set[str] = set()
        for backend in self.backends.values():
            try:
                down.update(backend.prepare(sample))
            except ComfyConnectionError:
                down.update(backend.targets)
        return sorted(down)

    def check(self, sample: Job) -> list[str]:
        """Build the backends and check the workflows (before anything listens); returns the servers that were down."""
        self.backends = backends_for(self.batch, self.workflows)
        self.down = self.check_workflows(sample)
        return self.down

    def start(self, sample: Job) -> list[str]:
        """Check (unless done), pick up the jobs a stopped API left, and start dispatching."""
        down = self.down if self.backends else self.check(sample)
        self.store.recover()
        resumed = [self._pending(j, resume=(j.server, j.prompt_id) if j.server and j.prompt_id else None)
                   for j in self.store.unfinished_submitted()]
        targets = [Target(b, name, cap, failures=int(name in down)) for b in self.backends.values()
                   for name, cap in b.targets.items()]
        scheduler = Scheduler(StoreLog(self.store, self.on_final), self.images_dir, self.batch.retries,
                              self.batch.backoff_seconds, meta={"source": "pistachio serve"}, progress=False)
        self._thread = threading.Thread(target=scheduler.run, args=(resumed, targets),
                                        kwargs={"feed": self._feed, "stop": self._stop}, name="pistachio-dispatch", daemon=True)
        self._thread.start()
        return down

    def _pending(self, stored: StoredJob, resume: tuple[str, str] | None = None) -> Pending:
        return Pending(job_of(stored), self.backends[stored.request["workflow"]], resume=resume)

    def _feed(self, free: int) -> list[Pending]:
        return [self._pending(j) for j in self.store.claim(free)]

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop taking jobs; what is in flight stays recorded as submitted and is picked up by the next start."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for backend in self.backends.values():
            backend.close()
