"""Where a job's pixels come from: ComfyUI servers (API) or a local diffusers pipeline + LoRA.

Both expose the same small surface to the scheduler: `targets` (names with a capacity), `prepare()`
(fail fast before the batch), `load(target)` (how busy it already is) and `run(job, target)`.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..comfy.client import ComfyClient
from ..comfy.errors import ComfyConnectionError, PromptLostError
from ..comfy.bindings import check_bindings, given
from ..comfy.workflow import check_workflow, fill, load_workflow, workflow_bindings
from .jobs import Job


@dataclass
class JobOutput:
    images: list[bytes]  # PNG bytes as the backend made them
    graph: dict[str, Any] | None = None  # the ComfyUI API graph that made them (goes into the PNG)
    info: dict[str, Any] = field(default_factory=dict)  # e.g. server file names


@dataclass
class ComfyBackend:
    """Jobs as ComfyUI prompts: the workflow filled per job through its bindings file, spread over `servers`."""

    servers: list[str]
    workflow: str
    checkpoint: str
    lora: str
    steps: int
    cfg: float
    per_server: int = 2  # prompts in flight per server: one running, one queued keeps the GPU busy
    job_timeout: float = 600.0
    request_timeout: float = 30.0
    name: str = "comfyui"
    clients: dict[str, ComfyClient] = field(init=False)

    def __post_init__(self) -> None:
        self.template = load_workflow(self.workflow)
        self.bindings = workflow_bindings(self.workflow)  # read now: a bad bindings file fails before any job
        self.clients = {url.rstrip("/"): ComfyClient(url, timeout=(3.05, self.request_timeout)) for url in self.servers}

    @property
    def targets(self) -> dict[str, int]:
        return {url: self.per_server for url in self.clients}

    def settings(self) -> dict[str, Any]:
        """What, besides the row, changes the picture (part of every job id)."""
        return {"backend": self.name, "workflow": Path(self.workflow).name, "checkpoint": self.checkpoint,
                "lora": self.lora, "steps": self.steps, "cfg": self.cfg}

    def values(self, job: Job) -> dict[str, Any]:
        """The workflow fields a job sets (None = keep the workflow's own)."""
        return dict(prompt=job.prompt, negative=job.negative, seed=job.seed, steps=self.steps, cfg=self.cfg,
                    width=job.width, height=job.height, checkpoint=self.checkpoint, lora=self.lora or None,
                    lora_strength=job.lora_strength, filename_prefix=f"pistachio/{job.job_id}")

    def graph(self, job: Job) -> dict[str, Any]:
        return fill(self.template, self.bindings, **self.values(job))

    def prepare(self, sample: Job) -> list[str]:
        """Check the bindings and the filled workflow against every reachable server's /object_info; return the unreachable ones."""
        down = []
        fields = given(self.values(sample))
        for url, client in self.clients.items():
            try:
                info = client.object_info()
            except ComfyConnectionError:
                down.append(url)
                continue
            where = f"workflow {self.workflow!r} on {url}"
            check_bindings(self.bindings, self.template, fields, info, where=where)
            check_workflow(self.graph(sample), info, where=where)
        if len(down) == len(self.clients):
            raise ComfyConnectionError(f"no ComfyUI server reachable: {', '.join(down)}",
                                       fix="start ComfyUI on the pod (port 8188) or fix `servers`")
        return down

    def load(self, target: str) -> int:
        try:
            return self.clients[target].load()
        except ComfyConnectionError:
            return 0

    def run(self, job: Job, target: str, on_submitted: Callable[[str | None], None], resume: str | None = None) -> JobOutput:
        """Run one job on one server; `resume` = a prompt_id queued by an earlier, interrupted run."""
        client = self.clients[target]
        graph = self.graph(job)
        result = None
        if resume:
            on_submitted(resume)
            try:
                result = client.wait(resume, self.job_timeout, poll=True)
            except PromptLostError:
                result = None
        if result is None:
            prompt_id = client.submit(graph)
            on_submitted(prompt_id)
            try:
                result = client.wait(prompt_id, self.job_timeout)
            except TimeoutError:
                client.cancel(prompt_id)  # do not leave a stuck prompt blocking the server
                raise
        images = [client.view(ref) for ref in result.images]
        return JobOutput(images, graph, {"prompt_id": result.prompt_id, "server_files": [r.filename for r in result.images]})

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


@dataclass
class LocalBackend:
    """Jobs on a local diffusers SDXL pipeline with the LoRA loaded as a peft adapter (CPU here, GPU on a pod)."""

    model: str
    lora: str
    steps: int
    cfg: float
    name: str = "local"
    pipe: Any = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()  # one pipeline, one job at a time

    @property
    def targets(self) -> dict[str, int]:
        return {"local": 1}

    def settings(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model, "lora": self.lora, "steps": self.steps, "cfg": self.cfg}

    def prepare(self, sample: Job) -> list[str]:
        """Load the pipeline and the LoRA once, before any job runs (same loaders as 05_inpainting)."""
        from ..lora import load_lora
        from ..models import load_sdxl_pipeline

        self.pipe = load_sdxl_pipeline(self.model)
        if self.lora:
            load_lora(self.pipe, self.lora)
        return []

    def load(self, target: str) -> int:
        return 0

    def run(self, job: Job, target: str, on_submitted: Callable[[str | None], None], resume: str | None = None) -> JobOutput:
        import torch

        from ..lora import set_lora_scale

        on_submitted(None)
        with self._lock:
            set_lora_scale(self.pipe, job.lora_strength)
            generator = torch.Generator("cpu").manual_seed(job.seed % 2**63)
            image = self.pipe(prompt=job.prompt, negative_prompt=job.negative or None, num_inference_steps=self.steps,
                              guidance_scale=self.cfg, width=job.width, height=job.height, generator=generator).images[0]
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return JobOutput([buf.getvalue()])

    def close(self) -> None:
        self.pipe = None
