"""08_video params: the VRAM plan for the pod's GPU, the video prompts file, backends, clip settings, retries.

Defaults live only in the notebook's `parameters` cell; each description equals that line's comment.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ..batch.params import check_servers
from ..params import NotebookParams
from .jobs import check_length
from .planner import BYTES_PER_WEIGHT, WAN_MODELS


class VideoParams(NotebookParams):
    notebook: ClassVar[str] = "08_video"

    input_paths: ClassVar[dict[str, str]] = {"prompts_file": "file"}

    plan_gpu_gb: float = Field(gt=0, le=1024, description="GPU memory of the pod in GB, for the VRAM plan")
    plan_model: str = Field(description="Wan2.2 model the plan's swap steps are for: i2v-A14B or ti2v-5B")
    plan_precision: str = Field(description="its weights' precision: fp16, fp8, gguf_q8 or gguf_q4")
    plan_frames: int = Field(ge=1, le=1025, description="clip length the plan assumes (frames, 4k+1)")
    plan_width: int = Field(ge=16, le=4096, multiple_of=16, description="clip width the plan assumes (pixels, multiple of 16)")
    plan_height: int = Field(ge=16, le=4096, multiple_of=16, description="clip height the plan assumes (pixels, multiple of 16)")
    prompts_file: Path = Field(description="CSV, YAML or JSONL rows: image (path or batch:<name>:<n>), prompt, negative, seed, length")
    batch_name: str = Field(pattern=r"^[\w.-]*[\w-][\w.-]*$", description="folder under <workspace>/videos/; reusing a name resumes that batch")
    backends: list[Literal["comfyui", "local"]] = Field(min_length=1, description="comfyui: the API servers below; local: the diffusers Wan pipeline here")
    servers: list[str] = Field(description="ComfyUI base URLs; each clip goes to the least busy one")
    workflow: str = Field(min_length=1, description="API-format Wan workflow: template name in pistachio_nb/workflows, or a path")
    model: str = Field(min_length=1, description="local backend: Wan2.2 I2V Diffusers folder, hub id, or tiny:wan_i2v")
    negative: str = Field(description="negative prompt for rows that give none")
    base_seed: int = Field(ge=0, le=2**64 - 1, description="seed for rows without one")
    length: int = Field(ge=1, le=1025, description="frames per clip for rows without one (4k+1; 81 frames are 5 s at 16 fps)")
    width: int = Field(ge=16, le=4096, multiple_of=16, description="clip width in pixels (multiple of 16; 832 or 1280 for the A14B)")
    height: int = Field(ge=16, le=4096, multiple_of=16, description="clip height in pixels (multiple of 16; 480 or 720 for the A14B)")
    fps: int = Field(ge=1, le=120, description="frames per second of the saved mp4 (Wan2.2 A14B: 16, TI2V-5B: 24)")
    steps: int = Field(ge=1, le=200, description="sampler steps (ComfyUI's Wan2.2 example: 20)")
    cfg: float = Field(ge=0, le=30, description="classifier-free guidance scale (Wan2.2 I2V: 3.5)")
    jobs_per_server: int = Field(ge=1, le=16, description="prompts in flight per server (video jobs are long: 1 is enough)")
    retries: int = Field(ge=0, le=20, description="retries of a clip after connection errors, restarts or timeouts")
    backoff_seconds: float = Field(ge=0, le=600, description="wait before the first retry; doubles with each retry, capped at 30 s (or this value if larger)")
    job_timeout_seconds: float = Field(gt=0, le=86400, description="a prompt still unfinished after this is cancelled on the server and retried")
    request_timeout_seconds: float = Field(gt=0, le=600, description="timeout of each HTTP request (nothing here can hang forever)")

    @field_validator("plan_model", "plan_precision")
    @classmethod
    def _planned(cls, value: str, info: ValidationInfo) -> str:
        known = WAN_MODELS if info.field_name == "plan_model" else BYTES_PER_WEIGHT
        if value not in known:
            raise ValueError(f"unknown {info.field_name} {value!r}: use one of {sorted(known)}")
        return value

    @field_validator("plan_frames", "length")
    @classmethod
    def _frames(cls, value: int) -> int:
        return check_length(value)

    @model_validator(mode="after")
    def _servers_for_comfyui(self) -> Self:
        check_servers(self.backends, self.servers)
        return self
