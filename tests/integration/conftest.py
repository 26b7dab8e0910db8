"""The real ComfyUI 0.3.64 (installed by `make comfyui`) started once per session, plus model-file helpers.

A missing install fails every test here with "run `make comfyui`": these tests never skip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from safetensors.torch import save_file
import torch

from pistachio_testkit import real_comfyui
from pistachio_testkit.real_comfyui import RealComfy


@pytest.fixture(scope="session")
def comfy_install() -> Path:
    """The ComfyUI venv's python; raises ComfyInstallMissing (run `make comfyui`) when absent."""
    real_comfyui.comfy_source()
    return real_comfyui.comfy_python()


@pytest.fixture(scope="session")
def real_comfy(comfy_install) -> Iterator[RealComfy]:
    """One real server for the session, on a free port with its own temp base directory."""
    with real_comfyui.start() as srv:
        yield srv


@pytest.fixture
def model_file(real_comfy) -> Callable[[str, str], Path]:
    """`model_file("checkpoints", "x.safetensors")` writes a tiny (not loadable) model into the server's models."""
    def write(folder: str, name: str) -> Path:
        path = real_comfy.base_dir / "models" / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"tiny.weight": torch.zeros(2, 2)}, str(path))
        return path
    return write


def dead_url() -> str:
    """A local URL nobody listens on."""
    return f"http://127.0.0.1:{real_comfyui.free_port()}"
