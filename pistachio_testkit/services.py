"""The demo profile's services: starters the runner calls before the notebooks (`services:` in params/demo.yaml).

Each is `start(workspace, **options) -> (values, stop)`: it prepares demo inputs or starts a local
server on a free port, and returns the parameter values the notebooks need (its URL, its folders).
"""

from __future__ import annotations

import os
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
from .hub_server import serve_hub, write_tiny_repo

Started = tuple[dict[str, Any], Callable[[], None]]
SOURCE_PLACEHOLDER = "{model_source}"  # in the demo manifest's URLs: the file server's base URL
REVISION_PLACEHOLDER = "{{revision:{repo}}}"  # in the demo manifest's hub entries: that repo's commit on the local hub
HUB_PLACEHOLDER = "{hub_endpoint}"  # the demo manifest's hub_endpoint: the local hub's URL
DEMO_HUB_REPOS = {"pistachio-tiny/sdxl": {"kind": "sdxl", "variant": "fp16"}, "pistachio-tiny/captioner": {"kind": "captioner"},
                  "pistachio-tiny/clip": {"kind": "clip"}, "pistachio-tiny/dinov2": {"kind": "dinov2"}}


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


def model_files(workspace: Path, manifest: str = "params/models-demo.yaml", folder: str = "model_source",
                hub_repos: dict[str, dict] | None = None, hf_home: str = "hf-home") -> Started:
    """Serve the demo model files, and the tiny models as hub repos, on free ports; write the demo manifest.

    `hub_repos` (default: the demo manifest's) maps a repo id to `{kind: <tiny kind>, variant: <fp16 or none>}`; the manifest's
    `{revision:<repo id>}` become their commits and `{hub_endpoint}` the local hub. HF_HOME is set to
    `<workspace>/<hf_home>` for the run (kernels inherit it), as a pod user exports it, and restored on stop.
    """
    write_demo_files(workspace / folder)
    files = serve_folder(workspace / folder)
    repos = {repo: write_tiny_repo(spec["kind"], workspace / "hub_repos" / repo, spec.get("variant"))
             for repo, spec in (DEMO_HUB_REPOS if hub_repos is None else hub_repos).items()}
    hub = serve_hub(repos)
    text = resolve(manifest).read_text(encoding="utf-8").replace(SOURCE_PLACEHOLDER, files.url)
    text = text.replace(HUB_PLACEHOLDER, hub.url)
    for repo in repos:
        text = text.replace(REVISION_PLACEHOLDER.format(repo=repo), hub.commit(repo))
    saved = os.environ.get("HF_HOME")
    os.environ["HF_HOME"] = str(workspace / hf_home)

    def stop() -> None:
        if saved is None:
            os.environ.pop("HF_HOME", None)
        else:
            os.environ["HF_HOME"] = saved
        hub.close()
        files.close()

    return {"models_manifest": str(write_text(workspace / Path(manifest).name, text))}, stop
