"""`pistachio pod start`: the one command a pod's post-start hook runs; a new pod becomes the locked pod.

Steps, each logged with what it did and how long it took (a second run changes nothing and says "ok"):
project pins -> ComfyUI at its locked commit -> each custom node at its commit, its requirements installed
and imported (a node that fails stops the start, named) -> model folders linked from the volume and checked
by sha256 -> services under supervisord (ComfyUI under the watchdog, TensorBoard, JupyterLab) -> health.
`--build-only` stops after the nodes: the Docker image runs exactly those steps at build time.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import PistachioError
from ..files import write_json
from ..paths import repo_root
from .gitstate import checkout_at
from .hashcache import HashCache
from .lock import PodLayout, custom_node_dirs, model_files

PIP_TIMEOUT_S = 1800
IMPORT_CHECK = """
import importlib.util, sys
sys.path.insert(0, sys.argv[1])  # ComfyUI's folder: nodes import comfy.* and folder_paths
name, folder = sys.argv[2], sys.argv[3]
spec = importlib.util.spec_from_file_location(name, folder + "/__init__.py", submodule_search_locations=[folder])
module = importlib.util.module_from_spec(spec)
sys.modules[name] = module
spec.loader.exec_module(module)
assert isinstance(getattr(module, "NODE_CLASS_MAPPINGS", None), dict), "no NODE_CLASS_MAPPINGS dict"
"""


class PodStartError(PistachioError, RuntimeError):
    """A start step failed; the message names the step and the part (e.g. the custom node)."""


@dataclass
class StartReport:
    steps: list[dict[str, Any]] = field(default_factory=list)

    def step(self, name: str, work: Callable[[], str]) -> str:
        """Run one step, record what it did and its seconds; a failure is recorded, then raised."""
        t0 = time.monotonic()
        try:
            action = work()
        except Exception as err:
            self.steps.append({"step": name, "status": "FAIL", "did": str(err).splitlines()[0], "seconds": round(time.monotonic() - t0, 2)})
            raise
        self.steps.append({"step": name, "status": "ok", "did": action, "seconds": round(time.monotonic() - t0, 2)})
        print(f"pod start: {name}: {action} ({self.steps[-1]['seconds']} s)", flush=True)
        return action

    @property
    def changed(self) -> bool:
        return any(s["did"] != "ok" for s in self.steps)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.steps, columns=["step", "status", "did", "seconds"])


def _source(mirror: Path | None, name: str, remote: str | None) -> str:
    local = mirror / name if mirror else None
    if local is not None and local.exists():
        return str(local)
    if not remote:
        raise PodStartError(f"{name}: the lock has no remote and no mirror has it", fix=f"put a copy in the mirror folder ({local})")
    return remote


def project_pins() -> str:
    """Install the project's pins when the running environment drifted from them."""
    from ..envcheck import check_env

    pins = repo_root() / "requirements-pinned.txt"
    drift = check_env(pins, fail_on_drift=False)
    if not len(drift):
        return "ok"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-r", str(pins)], capture_output=True,
                          text=True, timeout=PIP_TIMEOUT_S)
    if done.returncode:
        raise PodStartError(f"installing {pins} failed: {done.stderr.strip()[-500:]}", fix="see pip's message")
    return f"installed {len(drift)} drifted package(s)"


def node_fingerprint(folder: Path, commit: str) -> str:
    req = folder / "requirements.txt"
    return hashlib.sha256(commit.encode() + (req.read_bytes() if req.is_file() else b"")).hexdigest()


def install_node(layout: PodLayout, folder: Path) -> None:
    """pip install the node's requirements with ComfyUI's python, then import it the way ComfyUI does."""
    req = folder / "requirements.txt"
    if req.is_file():
        done = subprocess.run([str(layout.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r",
                               str(req)], capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        if done.returncode:
            raise PodStartError(f"custom node {folder.name}: its requirements did not install: {_tail(done.stderr)}",
                                fix=f"fix {req} (or pin the node to a commit that installs), then pod lock and pod start")
    done = subprocess.run([str(layout.python), "-c", IMPORT_CHECK, str(layout.comfy_dir), folder.name, str(folder)],
                          capture_output=True, text=True, timeout=300, cwd=layout.comfy_dir)
    if done.returncode:
        raise PodStartError(f"custom node {folder.name}: it does not import: {_tail(done.stderr)}",
                            fix="see the error; ComfyUI would skip this node and its workflows would fail")


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-3:])[-600:]


def restore_nodes(lock: dict[str, Any], layout: PodLayout, mirror: Path | None, state: dict[str, str]) -> list[str]:
    """Each locked node at its commit, installed and imported; nodes not in the lock are left alone and named."""
    did = []
    for node in lock["custom_nodes"]:
        name = node["name"]
        if not node["commit"]:
            raise PodStartError(f"custom node {name}: the lock has no commit (it was not a git checkout)",
                                fix="make it a git checkout on the source pod, then pod lock again")
        folder = layout.comfy_dir / "custom_nodes" / name
        moved = checkout_at(folder, _source(mirror, name, node["remote"]), node["commit"])
        fingerprint = node_fingerprint(folder, node["commit"])
        if moved != "ok" or state.get(name) != fingerprint:
            install_node(layout, folder)
            state[name] = fingerprint
            did.append(f"{name}: {moved if moved != 'ok' else 'installed'}")
    extra = sorted({d.name for d in custom_node_dirs(layout.comfy_dir)} - {n["name"] for n in lock["custom_nodes"]})
    did += [f"{name}: not in the lock, left as is" for name in extra]
    return did


def link_models(layout: PodLayout, volume: Path | None) -> str:
    """Point ComfyUI's models folder at the persistent volume's; never replaces a folder that holds files."""
    if volume is None:
        return "ok"
    target = layout.models_dir
    if target.is_symlink() and target.resolve() == volume.resolve():
        return "ok"
    if target.is_symlink() or (target.exists() and any(target.iterdir())):
        raise PodStartError(f"{target} already holds files (or links elsewhere); not replacing it with a link to {volume}",
                            fix=f"move its files into {volume} and remove {target}, then pod start again")
    if target.exists():
        target.rmdir()
    volume.mkdir(parents=True, exist_ok=True)
    target.symlink_to(volume.resolve(), target_is_directory=True)
    return f"linked {target} -> {volume}"


def check_models(lock: dict[str, Any], layout: PodLayout, cache: HashCache) -> str:
    have = {m["path"]: m["sha256"] for m in model_files(layout.models_dir, cache)} if layout.models_dir.exists() else {}
    cache.save()
    bad = [m["path"] for m in lock["models"] if have.get(m["path"]) != m["sha256"]]
    if bad:
        raise PodStartError(f"{len(bad)} locked model file(s) missing or different: {', '.join(bad[:5])}",
                            fix="download them (pistachio models --params params/pod.yaml) or restore the volume")
    return "ok" if not cache.hashed else f"hashed {cache.hashed} file(s)"


def start_pod(lock: dict[str, Any], layout: PodLayout, state_dir: Path, mirror: Path | None = None,
              models_volume: Path | None = None, build_only: bool = False,
              services: Callable[[], str] | None = None) -> StartReport:
    """Bring the pod to its lock; raises PodStartError on the first failed step (the report holds every step)."""
    report = StartReport()
    state_file = state_dir / "pod-start-state.json"
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        state = {}
    try:
        report.step("project pins", project_pins)
        report.step("ComfyUI", lambda: checkout_at(layout.comfy_dir, _source(mirror, "ComfyUI", lock["comfyui"]["remote"]),
                                                   lock["comfyui"]["commit"]))
        report.step("custom nodes", lambda: "; ".join(restore_nodes(lock, layout, mirror, state)) or "ok")
        if not build_only:
            report.step("models folder", lambda: link_models(layout, models_volume))
            report.step("model files", lambda: check_models(lock, layout, HashCache(state_dir / "sha256-cache.json")))
            if services is not None:
                report.step("services", services)
    finally:
        write_json(state_file, state)
        write_json(state_dir / "start-report.json", report.steps)
    return report
