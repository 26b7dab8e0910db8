"""Video prompts file (CSV, YAML or JSONL, read like 06's) -> clip jobs with stable ids.

A row: `image` (a path, or `batch:<name>[:<n>]` = the n-th image 06_batch_generation saved in batch
<name>, first by default), `prompt` (the motion), optional `negative`, `seed`, `length` (frames, 4k+1).
A relative path is taken from the prompts file's folder. A job id hashes the row, the settings, the
filled workflow and the start image's *content*, so a rerun skips finished clips and a changed still
becomes a new job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..batch.jobs import MAX_SEED, job_id, validated_rows
from ..batch.manifest import Manifest
from ..downloads import sha256_file
from ..errors import InputDataError

BATCH_PREFIX = "batch:"


def check_length(value: int) -> int:
    """Wan's VAE packs 4 frames per latent after the first: lengths are 4k+1 (Wan2.2 README; WanImageToVideo step 4)."""
    if value < 1 or (value - 1) % 4:
        raise ValueError(f"length {value} is not 4k+1 frames (e.g. 17, 49, 81)")
    return value


class VideoRow(BaseModel):
    """One row of a video prompts file; unknown columns are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    negative: str | None = None
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    length: int | None = None

    @field_validator("length")
    @classmethod
    def _length(cls, value: int | None) -> int | None:
        return None if value is None else check_length(value)


@dataclass(frozen=True)
class VideoDefaults:
    """Values for what a row leaves out, and the clip settings every row shares (from the notebook parameters)."""

    negative: str
    base_seed: int
    length: int
    width: int
    height: int
    fps: int


@dataclass(frozen=True)
class VideoJob:
    job_id: str
    image: str  # the start image's absolute path
    image_sha256: str
    prompt: str
    negative: str
    seed: int
    length: int
    width: int
    height: int
    fps: int
    source: str  # "video-prompts.csv:3"

    def fields(self) -> dict[str, Any]:
        return asdict(self)


def batch_image(ref: str, batches: Path) -> Path:
    """`batch:<name>[:<n>]` -> the n-th saved image of 06's batch <name>, in its manifest's order."""
    name, _, index = ref[len(BATCH_PREFIX):].partition(":")
    index = index or "0"
    manifest = batches / name / "manifest.jsonl"
    if not name or not manifest.is_file():
        raise InputDataError(f"image {ref!r}: no batch {name!r} under {batches}", fix="run 06_batch_generation first, or give a path")
    files = [f for row in Manifest(manifest).latest.values() if row.get("state") == "done" for f in row.get("files") or []]
    if not index.isdigit() or int(index) >= len(files):
        raise InputDataError(f"image {ref!r}: batch {name!r} has {len(files)} image(s)", fix=f"use batch:{name}:0 .. :{len(files) - 1}")
    return batches / name / "images" / files[int(index)]


def start_image(value: str, prompts_dir: Path, batches: Path) -> Path:
    """A row's image as an existing file (a batch reference or a path)."""
    path = batch_image(value, batches) if value.startswith(BATCH_PREFIX) else prompts_dir / Path(value).expanduser()
    if not path.is_file():
        raise InputDataError(f"start image {value!r} not found ({path})", fix="give an existing image path or batch:<name>:<n>")
    return path.resolve()


def load_video_jobs(path: str | Path, defaults: VideoDefaults, settings: dict[str, Any], batches: Path,
                    graph_of: Callable[[VideoJob], dict[str, Any]] | None = None) -> list[VideoJob]:
    """One job per row; every row is validated first and every bad one reported together."""
    path = Path(path)
    parsed, problems = [], []
    for n, row in validated_rows(path, VideoRow):
        try:
            parsed.append((n, row, start_image(row.image, path.parent, batches)))
        except InputDataError as err:
            problems.append(f"{path.name} row at line/item {n}: {err}")
    if problems:
        raise InputDataError("\n".join(problems), fix=f"edit {path}")
    jobs: dict[str, VideoJob] = {}
    for n, row, image in parsed:
        values = dict(image=str(image), image_sha256=sha256_file(image), prompt=row.prompt,
                      negative=defaults.negative if row.negative is None else row.negative,
                      seed=defaults.base_seed if row.seed is None else row.seed,
                      length=row.length or defaults.length, width=defaults.width, height=defaults.height, fps=defaults.fps)
        job = VideoJob(job_id="", source=f"{path.name}:{n}", **values)
        graph = graph_of(job) if graph_of else None
        jid = job_id(settings, graph, **{k: v for k, v in values.items() if k != "image"})
        jobs.setdefault(jid, replace(job, job_id=jid))
    if not jobs:
        raise InputDataError(f"{path} holds no rows", fix="add at least one row with an image and a prompt")
    return list(jobs.values())
