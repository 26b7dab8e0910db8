"""`run_video`: a video prompts file in, mp4 clips + previews + contact sheets + a manifest out, resumable.

The jobs go through 06's machinery unchanged: its JSONL manifest, its scheduler (least busy server, retries
with backoff, resume of a prompt left queued) and, under cron, the runner's health gate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..batch.manifest import Manifest
from ..batch.run import BatchResult, run_jobs, with_paths
from ..comfy.errors import WorkflowError
from ..files import write_sidecar
from ..paths import resolve
from .backends import ComfyVideoBackend, LocalVideoBackend
from .jobs import VideoDefaults, VideoJob, load_video_jobs
from .params import VideoParams
from .planner import VideoPlan, plan_table, plan_video

CLIP_COLUMNS = ["job_id", "state", "backend", "prompt", "seed", "length", "fps", "size", "server", "seconds", "files", "error"]


@dataclass
class VideoResult(BatchResult):
    """What `run_video` did: the clip folder, its manifest as tables, the mp4 paths and their contact sheets."""

    @property
    def clips(self) -> pd.DataFrame:
        """One row per clip: state, backend, motion prompt, seed, frames, fps, size, server, time, mp4 path, error."""
        frames = pd.DataFrame([self.manifest.latest[j] for j in self.job_ids])[["job_id", "length", "fps"]]
        table = with_paths(self.table, self.folder / "clips").merge(frames, on="job_id", how="left")
        return table[CLIP_COLUMNS]

    def images(self) -> list[Path]:
        """The saved mp4 files, in job order (under `clips/`)."""
        return [self.folder / "clips" / f for files in self.table["files"].dropna() for f in files]

    def grid(self, per_backend: int = 4):
        """First / middle / last frame of the first done clips of each backend, a row per clip (motion and drift)."""
        from PIL import Image

        from ..display import image_grid
        from .outputs import decode

        done = self.table[self.table["state"] == "done"].groupby("backend", sort=False).head(per_backend)
        rows = []
        for files in done["files"]:
            frames = decode((self.folder / "clips" / files[0]).read_bytes())[0]
            rows.append([Image.fromarray(frames[i]) for i in (0, len(frames) // 2, len(frames) - 1)])
        labels = [f"{b} · seed {s}" for b, s in zip(done["backend"], done["seed"])]
        return image_grid(rows, row_labels=labels, col_labels=["first", "middle", "last"], title=f"clips {self.folder.name}")

    def sheets(self) -> list[Path]:
        """The first / middle / last frame contact sheet of each saved clip."""
        return [p.with_name(f"{p.stem}_sheet.png") for p in self.images()]


def build_backends(p: VideoParams) -> list[ComfyVideoBackend | LocalVideoBackend]:
    """The backends the params ask for (nothing is loaded or contacted yet)."""
    backends: list[ComfyVideoBackend | LocalVideoBackend] = []
    if "comfyui" in p.backends:
        backends.append(ComfyVideoBackend(p.servers, p.workflow, "", "", p.steps, p.cfg, per_server=p.jobs_per_server,
                                          job_timeout=p.job_timeout_seconds, request_timeout=p.request_timeout_seconds,
                                          fps=p.fps))  # fmt: skip
    if "local" in p.backends:
        backends.append(LocalVideoBackend(p.model, "", p.steps, p.cfg))
    return backends


def backend_jobs(p: VideoParams, backend: ComfyVideoBackend | LocalVideoBackend) -> list[VideoJob]:
    """The prompts file's clips on one backend; ids hash its filled workflow and each start image's content."""
    defaults = VideoDefaults(p.negative, p.base_seed, p.length, p.width, p.height, p.fps)
    args = (resolve(p.prompts_file), defaults, backend.settings(), p.ws.batches)
    try:
        return load_video_jobs(*args, graph_of=getattr(backend, "graph", None))
    except WorkflowError:  # bindings that do not fit cannot fill a graph: prepare() names each problem on the server
        return load_video_jobs(*args)


def plan_clips(p: VideoParams) -> pd.DataFrame:
    """The clips the prompts file asks for, per backend, and whether a rerun skips them (nothing runs)."""
    manifest = Manifest(video_folder(p) / "manifest.jsonl")
    rows = [{"backend": b.name, **{k: v for k, v in j.fields().items() if k != "image_sha256"},
             "state": manifest.state(j.job_id) or "new"} for b in build_backends(p) for j in backend_jobs(p, b)]
    return pd.DataFrame(rows)


def video_folder(p: VideoParams) -> Path:
    return p.ws.sub("videos") / p.batch_name


def run_video(p: VideoParams) -> VideoResult:
    """Make every clip of the prompts file that is not done yet; the manifest says what happened to each."""
    folder = video_folder(p)
    backends = build_backends(p)
    jobs = {b.name: backend_jobs(p, b) for b in backends}
    manifest = Manifest(folder / "manifest.jsonl")
    write_sidecar(manifest.path, p)
    ids, skipped = run_jobs(backends, jobs, manifest, folder / "clips", p.retries, p.backoff_seconds, {"video_batch": p.batch_name})
    return VideoResult(folder, manifest, ids, skipped)


def plan(p: VideoParams) -> tuple[pd.DataFrame, VideoPlan]:
    """The planner's table for the planned clip on the pod's GPU, and the plan of the chosen model (offload, tiled VAE)."""
    table = plan_table(p.plan_frames, p.plan_width, p.plan_height, p.plan_gpu_gb)
    return table, plan_video(p.plan_model, p.plan_precision, p.plan_frames, p.plan_width, p.plan_height, p.plan_gpu_gb)
