"""`pistachio pod verify`: a live pod against its lock, as a PASS/FAIL table with the fix for each row."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import PistachioError
from ..paths import resolve

if TYPE_CHECKING:
    from .params import SetupParams

COLUMNS = ["check", "status", "expected", "found", "fix"]


def _row(check: str, ok: bool, expected: Any, found: Any, fix: str, warn: bool = False) -> dict[str, Any]:
    status = "PASS" if ok else ("WARN" if warn else "FAIL")
    return {"check": check, "status": status, "expected": expected, "found": found, "fix": "" if ok else fix}


def _short(commit: str | None) -> str:
    return commit[:12] if commit else "(not a git checkout)"


def packages_row(locked: dict[str, str], live: dict[str, str]) -> dict[str, Any]:
    """ComfyUI's environment: FAIL on a changed or missing locked package, WARN on extra ones."""
    changed = sorted((k, v, live.get(k)) for k, v in locked.items() if live.get(k) != v)
    if changed:
        found = ", ".join(f"{k} {v} -> {w or 'missing'}" for k, v, w in changed[:8])
        pins = " ".join(f"{k}=={v}" for k, v, _ in changed[:8])
        return _row("ComfyUI packages", False, f"{len(locked)} locked", found, f"with ComfyUI's python: pip install {pins}")
    extra = sorted(set(live) - set(locked))
    return _row("ComfyUI packages", not extra, f"{len(locked)} locked", f"{len(extra)} extra: {', '.join(extra[:8])}"
                if extra else "all match", "pistachio pod lock (to record the extra packages)", warn=True)


def compare(lock: dict[str, Any], live: dict[str, Any]) -> pd.DataFrame:
    """One row per locked item (ComfyUI, each node, packages, each model) plus rows for what the lock lacks."""
    rows = [_row("project commit", lock["project"]["commit"] == live["project"]["commit"], _short(lock["project"]["commit"]),
                 _short(live["project"]["commit"]), "git checkout the locked commit, or pod lock again after updating", warn=True),
            _row("project pins", lock["project"]["pins_sha256"] == live["project"]["pins_sha256"], "requirements-pinned.txt as locked",
                 "changed", "make setup (installs the pins), then pod lock", warn=True)]
    want, got = lock["comfyui"], live["comfyui"]
    rows.append(_row("ComfyUI commit", want["commit"] == got["commit"] and not got["dirty"], _short(want["commit"]),
                     _short(got["commit"]) + (" + local edits" if got["dirty"] else ""), "pistachio pod start (restores it)"))
    nodes = {n["name"]: n for n in live["custom_nodes"]}
    for node in lock["custom_nodes"]:
        have = nodes.pop(node["name"], None)
        found = "missing" if have is None else _short(have["commit"]) + (" + local edits" if have.get("dirty") else "")
        ok = have is not None and have["commit"] == node["commit"] and not have.get("dirty")
        rows.append(_row(f"node {node['name']}", ok and node["commit"] is not None, _short(node["commit"]), found,
                         "pistachio pod start (clones or checks out the locked commit)" if node["commit"]
                         else "the lock has no commit for it: make it a git checkout on the pod, then pod lock"))
    for name, have in sorted(nodes.items()):
        rows.append(_row(f"node {name}", False, "not in the lock", _short(have["commit"]),
                         "pistachio pod lock (if it belongs), else remove it from custom_nodes/", warn=True))
    rows.append(packages_row(lock["packages"], live["packages"]))
    files = {m["path"]: m for m in live["models"]}
    for model in lock["models"]:
        have = files.pop(model["path"], None)
        found = "missing" if have is None else ("same sha256" if have["sha256"] == model["sha256"]
                                                else f"sha256 {have['sha256'][:12]} ({have['bytes']} bytes)")
        rows.append(_row(f"model {model['path']}", have is not None and have["sha256"] == model["sha256"],
                         f"sha256 {model['sha256'][:12]}", found,
                         "download it again (pistachio models --params params/pod.yaml) or restore it from the volume"))
    for path in sorted(files):
        rows.append(_row(f"model {path}", False, "not in the lock", "present", "pistachio pod lock (to record it)", warn=True))
    return pd.DataFrame(rows, columns=COLUMNS)


def drifted(table: pd.DataFrame) -> bool:
    return bool((table["status"] == "FAIL").any())


def pod_lock_table(p: SetupParams) -> pd.DataFrame:
    """00_setup's view of `pistachio pod verify`: the pod against `p.pod_lock`, or one row saying how to make one."""
    from . import DEFAULT_STATE
    from .hashcache import HashCache
    from .lock import PodLayout, read_lock, read_pod

    models = resolve(p.comfy_models_dir)
    comfy = resolve(p.comfy_dir) if p.comfy_dir else models.parent
    lock_cmd = f"on a working pod: pistachio pod lock --comfy-dir {comfy} --lock params/pod.lock.yaml, commit it, set pod_lock"
    lock = resolve(p.pod_lock) if p.pod_lock else None
    if lock is None or not lock.is_file():
        found = f"{lock} does not exist" if lock else "pod_lock is not set"
        return pd.DataFrame([_row("pod lock", False, "a lock file", found, lock_cmd, warn=True)], columns=COLUMNS)
    try:
        python = resolve(p.comfy_python) if p.comfy_python else None
        live = read_pod(PodLayout.of(comfy, python, models), HashCache(DEFAULT_STATE / "sha256-cache.json"))
        return compare(read_lock(lock), live)
    except PistachioError as err:
        return pd.DataFrame([_row("pod lock", False, str(Path(lock).name), str(err).splitlines()[0], err.fix or lock_cmd)],
                            columns=COLUMNS)
