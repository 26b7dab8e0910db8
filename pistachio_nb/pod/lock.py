"""`pistachio pod lock`: record a live pod (ComfyUI and custom nodes by commit, ComfyUI's packages, model files by
sha256, the project's commit and pins) in one YAML file for version control. No secrets: remote URLs lose any
credentials, and nothing from the environment is read.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputDataError
from ..files import read_yaml, write_text
from ..paths import repo_root
from .gitstate import git, read_checkout
from .hashcache import HashCache

LOCK_VERSION = 1
MODEL_SUFFIXES = {".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".onnx", ".sft", ".pt2"}
PIP_TIMEOUT_S = 120


@dataclass(frozen=True)
class PodLayout:
    """Where a pod's parts are: ComfyUI's checkout, the python that runs it, its models folder."""

    comfy_dir: Path
    python: Path
    models_dir: Path

    @classmethod
    def of(cls, comfy_dir: Path, python: Path | None = None, models_dir: Path | None = None) -> PodLayout:
        comfy_dir = Path(comfy_dir)
        return cls(comfy_dir, Path(python) if python else comfy_dir / "venv" / "bin" / "python",
                   Path(models_dir) if models_dir else comfy_dir / "models")


def custom_node_dirs(comfy_dir: Path) -> list[Path]:
    root = comfy_dir / "custom_nodes"
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))) if root.is_dir() else []


def node_entry(folder: Path) -> dict[str, Any]:
    if not (folder / ".git").exists():
        return {"name": folder.name, "remote": None, "commit": None, "dirty": None}
    c = read_checkout(folder)
    return {"name": folder.name, "remote": c.remote, "commit": c.commit, "dirty": c.dirty}


def packages(python: Path) -> dict[str, str]:
    """name -> version of every package in ComfyUI's environment (`pip list`)."""
    if not python.is_file():
        raise InputDataError(f"ComfyUI's python {python} does not exist", fix="pass the interpreter that runs ComfyUI (--python, or comfy_python in 00)")
    done = subprocess.run([str(python), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
                          capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    if done.returncode:
        raise InputDataError(f"{python} -m pip list failed: {done.stderr.strip()[-300:]}",
                             fix="pass --python with the interpreter that runs ComfyUI")
    return {p["name"].lower(): p["version"] for p in json.loads(done.stdout)}


def model_files(models_dir: Path, cache: HashCache) -> list[dict[str, Any]]:
    """Every model file under `models_dir` (symlinked volume folders followed), with size and sha256."""
    root = models_dir.resolve()
    found = sorted(p for p in root.rglob("*") if p.suffix.lower() in MODEL_SUFFIXES and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    return [{"path": p.relative_to(root).as_posix(), "bytes": p.stat().st_size, "sha256": cache.sha256(p)} for p in found]


def project_entry() -> dict[str, Any]:
    root = repo_root()
    pins = root / "requirements-pinned.txt"
    return {"commit": git(root, "rev-parse", "HEAD"), "dirty": bool(git(root, "status", "--porcelain", "--untracked-files=no")),
            "pins_sha256": hashlib.sha256(pins.read_bytes()).hexdigest()}


def read_pod(layout: PodLayout, cache: HashCache) -> dict[str, Any]:
    """The lock of a live pod, as data (what `write_lock` saves and `verify` compares)."""
    comfy = read_checkout(layout.comfy_dir)
    lock = {
        "version": LOCK_VERSION,
        "project": project_entry(),
        "comfyui": {"remote": comfy.remote, "commit": comfy.commit, "dirty": comfy.dirty},
        "custom_nodes": [node_entry(d) for d in custom_node_dirs(layout.comfy_dir)],
        "packages": packages(layout.python),
        "models": model_files(layout.models_dir, cache),
    }
    cache.save()
    return lock


def write_lock(path: Path, lock: dict[str, Any]) -> Path:
    header = (f"# pod lock written by `pistachio pod lock` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.\n"
              "# Commit it; `pistachio pod verify` compares a pod with it, `pistachio pod start` restores it.\n")
    return write_text(path, header + yaml.safe_dump(lock, sort_keys=False, width=120))


def read_lock(path: Path) -> dict[str, Any]:
    data = read_yaml(path, InputDataError, "pod lock", "write one on the pod with `pistachio pod lock`")
    missing = [k for k in ("version", "comfyui", "custom_nodes", "packages", "models") if not isinstance(data, dict) or k not in data]
    if missing:
        raise InputDataError(f"{path}: not a pod lock (missing {', '.join(missing)})", fix="write one with `pistachio pod lock`")
    if data["version"] != LOCK_VERSION:
        raise InputDataError(f"{path}: lock version {data['version']}, this code reads {LOCK_VERSION}")
    return data
