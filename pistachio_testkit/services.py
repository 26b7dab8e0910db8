"""The demo profile's services: starters the runner calls before the notebooks (`services:` in params/demo.yaml).

Each is `start(workspace, **options) -> (values, stop)`: it prepares demo inputs or starts a local
server on a free port, and returns the parameter values the notebooks need (its URL, its folders).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pistachio_nb.files import write_text
from pistachio_nb.paths import resolve

from .comfy_server import ComfyTestServer
from .demo_data import make_demo_images
from .demo_kb import write_demo_kb
from .demo_model_source import write_demo_files
from .fileserver import serve_folder

Started = tuple[dict[str, Any], Callable[[], None]]
SOURCE_PLACEHOLDER = "{model_source}"  # in the demo manifest's URLs: the file server's base URL


def _nothing() -> None:
    """Stop function of a service that leaves only files behind."""


def demo_inputs(workspace: Path, source: str = "source_images", kb: str = "knowledge_demo") -> Started:
    """Write the generated source photos and the demo knowledge base into the workspace (once; reused after)."""
    source_dir = workspace / source
    if not source_dir.exists():
        make_demo_images(source_dir)
    return {"source_dir": str(source_dir), "kb_root": str(write_demo_kb(workspace / kb))}, _nothing


def comfyui_imitation(workspace: Path, root: str = "comfy", models: dict[str, list[str]] | None = None) -> Started:
    """The ComfyUI imitation on a free port, files under `<workspace>/<root>` (`models` are created empty there)."""
    folder = workspace / root
    srv = ComfyTestServer(port=0, root=folder, models=models).start()
    values = {"comfy_url": srv.url, "servers": [srv.url], "comfy_models_dir": str(folder / "models"),
              "comfy_output_dir": str(folder / "output")}
    return values, srv.stop


def model_files(workspace: Path, manifest: str = "params/models-demo.yaml", folder: str = "model_source") -> Started:
    """Serve the demo model files on a free port and write the demo manifest with that URL into the workspace."""
    write_demo_files(workspace / folder)
    server = serve_folder(workspace / folder)
    text = resolve(manifest).read_text(encoding="utf-8").replace(SOURCE_PLACEHOLDER, server.url)
    return {"models_manifest": str(write_text(workspace / Path(manifest).name, text))}, server.close
