"""06_batch_generation params: prompts file, backends, defaults per row, retries and timeouts.

Defaults live only in the notebook's `parameters` cell; each description equals that line's comment.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from ..params import NotebookParams


class BatchParams(NotebookParams):
    notebook: ClassVar[str] = "06_batch_generation"

    input_paths: ClassVar[dict[str, str]] = {"prompts_file": "file"}

    prompts_file: Path = Field(description="CSV, YAML or JSONL rows: prompt, negative, seeds or count, lora_strength, size")
    batch_name: str = Field(pattern=r"^[\w.-]*[\w-][\w.-]*$", description="folder under <workspace>/batches/; reusing a name resumes that batch")
    backends: list[Literal["comfyui", "local"]] = Field(min_length=1, description="comfyui: the API servers below; local: a diffusers pipeline here")
    servers: list[str] = Field(description="ComfyUI base URLs; each job goes to the least busy one")
    workflow: str = Field(min_length=1, description="API-format workflow: template name in pistachio_nb/workflows, or a path")
    comfy_checkpoint: str = Field(description="checkpoint file name exactly as ComfyUI lists it")
    comfy_lora: str = Field(description='LoRA file name as ComfyUI lists it: 04_checkpoints publishes the pick as <trigger>.safetensors ("" keeps the workflow\'s)')
    model: str = Field(min_length=1, description="local backend: SDXL base model (hub id, local folder, or tiny:sdxl)")
    lora: str = Field(min_length=1, description="local backend: LoRA .safetensors, \"recommended\" (04_checkpoints' pick) or \"none\"")
    negative: str = Field(description="negative prompt for rows that give none")
    count: int = Field(ge=1, le=1000, description="images per row that gives no seeds (seeds base_seed, base_seed+1, ...)")
    base_seed: int = Field(ge=0, le=2**64 - 1, description="first seed for rows without seeds")
    lora_strength: float = Field(ge=-5, le=5, description="LoRA strength for rows that give none")
    width: int = Field(ge=16, le=8192, multiple_of=8, description="image width in pixels for rows without a size (multiple of 8; 1024 for SDXL)")
    height: int = Field(ge=16, le=8192, multiple_of=8, description="image height in pixels for rows without a size")
    steps: int = Field(ge=1, le=200, description="sampler steps (30 on the pod)")
    cfg: float = Field(ge=0, le=30, description="classifier-free guidance scale")
    jobs_per_server: int = Field(ge=1, le=16, description="prompts in flight per server: one running + one queued keeps the GPU busy")
    retries: int = Field(ge=0, le=20, description="retries of a job after connection errors, restarts or timeouts")
    backoff_seconds: float = Field(ge=0, le=600, description="wait before the first retry; doubles with each retry, capped at 30 s (or this value if larger)")
    job_timeout_seconds: float = Field(gt=0, le=86400, description="a prompt still unfinished after this is cancelled on the server and retried")
    request_timeout_seconds: float = Field(gt=0, le=600, description="timeout of each HTTP request (nothing here can hang forever)")

    @model_validator(mode="after")
    def _servers_for_comfyui(self) -> Self:
        check_servers(self.backends, self.servers)
        if "comfyui" in self.backends and not self.comfy_checkpoint:
            raise ValueError("backends has comfyui but comfy_checkpoint is empty")
        return self


def check_servers(backends: list[str], servers: list[str]) -> None:
    """Backends do not repeat; `comfyui` needs at least one http(s) server (06 and 08 share the rule)."""
    if len(set(backends)) != len(backends):
        raise ValueError(f"backends {backends} repeat a value")
    if "comfyui" in backends:
        if not servers:
            raise ValueError("backends has comfyui but servers is empty (e.g. ['http://127.0.0.1:8188'])")
        bad = [u for u in servers if not u.startswith(("http://", "https://"))]
        if bad:
            raise ValueError(f"servers must be http(s):// URLs, got {bad}")
