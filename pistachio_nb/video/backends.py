"""Where a clip comes from: ComfyUI servers running the Wan2.2 workflow, or the local diffusers Wan pipeline.

Both are 06's backends for the same scheduler: `ComfyVideoBackend` is 06's `ComfyBackend` with the start
image uploaded first and video fields filled; each `save()` writes the mp4 + webp + contact sheet.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..batch.backends import ComfyBackend, JobOutput, LocalBackend
from ..comfy.errors import ComfyConnectionError
from .jobs import VideoJob
from .outputs import save_clip

# (node class, input) naming a model file in the Wan workflows; ComfyUI folders diffusion_models, text_encoders, vae
WAN_MODEL_INPUTS = (("UNETLoader", "unet_name"), ("CLIPLoader", "clip_name"), ("VAELoader", "vae_name"))


def upload_name(job: VideoJob) -> str:
    """The start image's name on the server: from its content, so the filled graph (and the job id) is stable."""
    return f"pistachio_start_{job.image_sha256[:16]}{Path(job.image).suffix.lower() or '.png'}"


def save_video(backend: Any, job: VideoJob, n: int, data: bytes, images_dir: Path, meta: dict[str, Any]) -> str:
    """Write one clip as `<job_id>_<n>.mp4` (+ webp, sheet, sidecar) with the job and settings in its tags."""
    stem = f"{job.job_id}_{n}"
    save_clip(data, images_dir, stem, {**job.fields(), **backend.settings(), **meta})
    return f"{stem}.mp4"


@dataclass
class ComfyVideoBackend(ComfyBackend):
    """Clips as ComfyUI prompts: the Wan workflow filled per job through its bindings, spread over `servers`."""

    fps: int = 16

    def settings(self) -> dict[str, Any]:
        return {"backend": self.name, "workflow": Path(self.workflow).name, "steps": self.steps, "cfg": self.cfg}

    def values(self, job: VideoJob) -> dict[str, Any]:
        two_experts = "switch_step" in self.bindings.fields  # the A14B hands over half-way, as ComfyUI's example
        return dict(image=upload_name(job), prompt=job.prompt, negative=job.negative, seed=job.seed, length=job.length,
                    width=job.width, height=job.height, fps=job.fps, steps=self.steps, cfg=self.cfg,
                    switch_step=self.steps // 2 if two_experts else None, filename_prefix=f"pistachio/{job.job_id}")

    def upload(self, job: VideoJob, target: str) -> None:
        """Put the job's start image into the server's input folder under its content name (idempotent)."""
        self.clients[target].upload_image(Path(job.image).read_bytes(), upload_name(job))

    def prepare(self, sample: VideoJob) -> list[str]:
        """Upload the sample's start image where the server answers, then 06's checks of bindings and graph."""
        for url in self.clients:
            try:
                self.upload(sample, url)
            except ComfyConnectionError:
                pass  # reported as down by the checks below
        return super().prepare(sample)

    def run(self, job: VideoJob, target: str, on_submitted: Callable[[str | None], None], resume: str | None = None) -> JobOutput:
        if not resume:
            self.upload(job, target)
        return super().run(job, target, on_submitted, resume)

    def save(self, job: VideoJob, n: int, data: bytes, graph: dict | None, images_dir: Path, meta: dict[str, Any]) -> str:
        return save_video(self, job, n, data, images_dir, meta)


@dataclass
class LocalVideoBackend(LocalBackend):
    """Clips from diffusers' WanImageToVideoPipeline here (the tiny model on CPU, the real one on a GPU); `lora` unused."""

    def settings(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model, "steps": self.steps, "cfg": self.cfg}

    def prepare(self, sample: VideoJob) -> list[str]:
        """Load the pipeline once (`tiny:wan_i2v`, a hub id or a Diffusers folder, through `resolve_model`)."""
        from ..models import resolve_model
        from .local import load_pipeline

        self.pipe = load_pipeline(resolve_model(self.model))
        return []

    def run(self, job: VideoJob, target: str, on_submitted: Callable[[str | None], None], resume: str | None = None) -> JobOutput:
        from .local import VideoRequest, generate, write_mp4

        on_submitted(None)
        req = VideoRequest(image=job.image, prompt=job.prompt, negative_prompt=job.negative, seed=job.seed % 2**63,
                           frames=job.length, width=job.width, height=job.height, steps=self.steps, guidance=self.cfg,
                           fps=job.fps)  # fmt: skip
        with self._lock:
            frames = generate(self.pipe, req)
        with tempfile.TemporaryDirectory(prefix="pistachio-clip-") as tmp:
            return JobOutput([write_mp4(frames, Path(tmp) / "clip.mp4", job.fps, {}).read_bytes()])

    def save(self, job: VideoJob, n: int, data: bytes, graph: dict | None, images_dir: Path, meta: dict[str, Any]) -> str:
        return save_video(self, job, n, data, images_dir, meta)
