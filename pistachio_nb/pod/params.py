"""00_setup params: pins, ComfyUI, model files and folders the pod health check and downloads use.

Defaults live only in the notebook's `parameters` cell; each description equals that line's comment.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self

from pydantic import Field, field_validator, model_validator

from ..params import NotebookParams


class SetupParams(NotebookParams):
    notebook: ClassVar[str] = "00_setup"

    input_paths: ClassVar[dict[str, str]] = {"models_manifest": "file"}  # a missing pins file is a FAIL row

    pins_file: Path = Field(description="the one tested set of exact package versions; the drift check compares with it")
    fail_on_drift: bool = Field(description="make drift a FAIL that stops the notebook at the gate (true on the pod)")
    # pod health, model downloads, workflows (health.py, downloads.py, workflow_convert.py)
    comfy_url: str = Field(pattern=r"^https?://[^/\s]+", description="ComfyUI base URL (8188 is its default port; the demo gives its own)")
    comfy_timeout_s: float = Field(gt=0, le=300, description="seconds each ComfyUI request may take")
    required_node_classes: list[str] = Field(description="node classes ComfyUI's /object_info must list; the repo workflows' classes are added")
    comfy_models_dir: Path = Field(description="ComfyUI's models folder (checkpoints/, loras/, ...)")
    comfy_output_dir: Path = Field(description="ComfyUI's output folder; must be writable")
    required_models: list[str] = Field(description="extra 'folder/file' paths below comfy_models_dir that must exist (manifest files always count)")
    models_manifest: Path | None = Field(description="YAML list of models to download and verify, e.g. params/models-pod.yaml (None for none)")
    workflows_dir: Path = Field(description="where pulled workflows go; pistachio_nb/workflows on the pod, to commit them")
    require_gpu: bool = Field(description="a missing CUDA GPU is a FAIL (pod) instead of a WARN (demo)")
    min_free_gb: float = Field(ge=0, description="free disk in GiB below which the workspace / models volume FAILs")
    # the pod as a lock file (pod/lock.py, verify.py): compared row by row when a lock exists
    pod_lock: Path | None = Field(None, description="pod lock written by `pistachio pod lock` on a working pod (None: no lock yet)")
    comfy_dir: Path | None = Field(None, description="ComfyUI's git checkout, for the lock check (None: the folder above comfy_models_dir)")
    comfy_python: Path | None = Field(None, description="the python that runs ComfyUI, for the lock check (None: <comfy_dir>/venv/bin/python)")

    @field_validator("models_manifest", "pod_lock", "comfy_dir", "comfy_python", mode="before")
    @classmethod
    def _empty_manifest_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value  # "" means none, not the repo root

    @model_validator(mode="after")
    def _model_paths(self) -> Self:
        bad = [m for m in self.required_models if "/" not in m.strip("/") or ".." in m.split("/")]
        if bad:
            raise ValueError(f"required_models entries must look like 'loras/file.safetensors', got {bad}")
        return self
