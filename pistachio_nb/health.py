"""Pod health: one PASS / WARN / FAIL table (check, found, fix) covering pins, GPU, disks, ComfyUI,
its node classes and model files, and writable folders. Any FAIL gives a non-zero exit code so
cron and a pod start hook can refuse to run a batch on a broken pod.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .comfy.client import ComfyClient
from .comfy.errors import ComfyError
from .downloads import load_manifest
from .envcheck import drift_table
from .errors import PistachioError
from .paths import resolve
from .watchdog import CRASH_LOG, recent_crashes
from .workflow_convert import workflow_node_classes

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
PACKAGE_WORKFLOWS = Path(__file__).resolve().parent / "workflows"
GiB = 2**30
POD_VOLUME = Path("/workspace")  # where RunPod and most GPU clouds mount the persistent network volume


class HealthCheckError(PistachioError, RuntimeError):
    """At least one health check FAILed: later stages would break on this pod."""


def human_size(n: int) -> str:
    """Bytes as `6.46 GiB`, `8.4 KiB`, `948 B`."""
    for unit, scale in (("GiB", GiB), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.{2 if unit == 'GiB' else 1}f} {unit}"
    return f"{n} B"


@dataclass(frozen=True)
class Row:
    """One line of the health table."""

    status: str
    check: str
    found: str
    fix: str = ""


def guarded(check: str, fn, *args):
    """`fn(*args)`, or a FAIL row naming the check when it raises one of our errors (bad file, bad manifest)."""
    try:
        return fn(*args)
    except PistachioError as err:
        message, _, fix = str(err).partition("\n  fix: ")
        return Row(FAIL, check, message.splitlines()[0], fix)


def check_pins(pins_file: Path, fail_on_drift: bool) -> Row:
    """Installed packages against requirements-pinned.txt."""
    table = drift_table(pins_file)
    bad = table[table["status"] != "ok"]
    if bad.empty:
        return Row(PASS, "packages match pins", f"all {len(table)} pinned packages installed at their versions")
    listed = ", ".join(f"{r.package} {r.installed} (pinned {r.pinned})" for r in bad.head(5).itertuples())
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    return Row(FAIL if fail_on_drift else WARN, "packages match pins", f"{len(bad)} differ: {listed}{more}",
               f"reinstall the tested set: make setup (pip install -r {pins_file})")


def check_gpu(require_gpu: bool) -> list[Row]:
    """torch build, CUDA, each GPU's name and free / total VRAM."""
    import torch

    if not torch.cuda.is_available():
        return [Row(FAIL if require_gpu else WARN, "CUDA GPU", f"none (torch {torch.__version__}, CPU only)",
                    "on a pod: check the pod has a GPU and torch is the CUDA build (nvidia-smi; make setup)")]
    rows = []
    for i in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(i)
        found = f"{torch.cuda.get_device_name(i)}: {free / GiB:.1f} of {total / GiB:.1f} GiB VRAM free (torch {torch.__version__}, CUDA {torch.version.cuda})"
        low = free < 0.25 * total
        rows.append(Row(WARN if low else PASS, f"GPU {i}", found,
                        "another process holds VRAM: check nvidia-smi (a stale kernel or a ComfyUI queue)" if low else ""))
    return rows


def check_disk(path: Path, label: str, min_free_gb: float) -> Row:
    """Free space on the volume holding `path` (its nearest existing parent)."""
    probe = next(p for p in (path, *path.parents) if p.exists())
    usage = shutil.disk_usage(probe)
    found = f"{usage.free / GiB:.1f} GiB free of {usage.total / GiB:.1f} GiB ({probe})"
    status = FAIL if usage.free < min_free_gb * GiB else WARN if usage.free < 2 * min_free_gb * GiB else PASS
    fix = "" if status == PASS else f"free space on this volume (old checkpoints, outputs/runs); need >= {min_free_gb:g} GiB"
    return Row(status, f"disk: {label}", found, fix)


def check_writable(path: Path, label: str) -> Row:
    """Write and remove a probe file in an existing folder; never creates the folder (that would hide a missing mount)."""
    if not path.is_dir():
        return Row(FAIL, f"writable: {label}", f"{path} does not exist", "create it, or fix the path in params")
    probe = path / f".pistachio-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        return Row(FAIL, f"writable: {label}", f"{path}: {err.strerror}", "fix the folder's owner/permissions or the volume mount")
    return Row(PASS, f"writable: {label}", str(path))


def check_volume(path: Path, volume: Path = POD_VOLUME, system_root: Path = Path("/")) -> list[Row]:
    """A workspace below the pod's volume path must be on a mounted volume, not on the container disk.

    An unmounted network volume leaves `/workspace` a plain folder of `/`: writes succeed, and vanish with the
    container. No row when the workspace is not below `volume` (the demo, a laptop).
    """
    path = Path(os.path.abspath(path))
    if not (path.is_relative_to(volume) or Path(os.path.realpath(path)).is_relative_to(volume)):
        return []
    check = f"workspace on the volume ({volume})"
    if not volume.is_dir():
        return [Row(FAIL, check, f"{volume} does not exist: no volume is mounted there",
                    f"attach the pod's network volume at {volume}, or set workspace to where it is mounted")]
    if not os.path.ismount(volume) and volume.stat().st_dev == system_root.stat().st_dev:
        return [Row(FAIL, check, f"{volume} is a plain folder on the same filesystem as {system_root} (the container disk)",
                    f"attach the pod's network volume at {volume} (pod settings) before any run: data written now is "
                    "lost with the container")]
    return [Row(PASS, check, f"{volume} is a mount of its own (device {volume.stat().st_dev})")]


def check_comfy(client: ComfyClient) -> tuple[Row, bool]:
    """`GET /system_stats`: version, devices and VRAM as ComfyUI sees them; (row, reachable)."""
    try:
        stats = client.system_stats()
    except ComfyError as err:
        return Row(FAIL, "ComfyUI reachable", str(err).splitlines()[0],
                   "start ComfyUI (pistachio watchdog -- python main.py --port 8188) or fix comfy_url"), False
    devices = "; ".join(f"{d.get('name')} {d.get('vram_free', 0) / GiB:.1f}/{d.get('vram_total', 0) / GiB:.1f} GiB free"
                        for d in stats.get("devices", []))
    version = stats.get("system", {}).get("comfyui_version", "?")
    return Row(PASS, "ComfyUI reachable", f"{client.url}: ComfyUI {version}; {devices or 'no devices listed'}"), True


def required_classes(listed: list[str], workflow_dirs: list[Path]) -> list[str]:
    """Node classes from params plus every class used by the API-format workflows in the repo."""
    return sorted(set(listed) | set(workflow_node_classes([d for d in workflow_dirs if d.is_dir()])))


def check_node_classes(client: ComfyClient, classes: list[str], reachable: bool) -> Row:
    """Every required node class is in `/object_info` (custom nodes loaded without import errors)."""
    if not reachable:
        return Row(WARN, "node classes loaded", f"not checked ({len(classes)} required): ComfyUI not reachable")
    try:
        known = client.object_info()
    except ComfyError as err:
        return Row(FAIL, "node classes loaded", str(err).splitlines()[0], "raise comfy_timeout_s, or check the ComfyUI log")
    missing = [c for c in classes if c not in known]
    if missing:
        return Row(FAIL, "node classes loaded", f"missing {len(missing)} of {len(classes)}: {', '.join(missing)}",
                   "install the custom node packs that provide them (ComfyUI-Manager), then check the ComfyUI "
                   "startup log for IMPORT FAILED")
    return Row(PASS, "node classes loaded", f"all {len(classes)} present ({', '.join(classes)})")


def required_models(listed: list[str], manifest: Path | None, models_dir: Path) -> list[str]:
    """`folder/file` paths below the models folder: params list plus every models-manifest entry."""
    from_manifest = [str(e.dest.relative_to(models_dir)) for e in load_manifest(manifest, models_dir)] if manifest else []
    return sorted(set(listed) | set(from_manifest))


def model_listing(client: ComfyClient, folder: str) -> list[str] | None:
    """Files ComfyUI lists in one models folder; None when it cannot say (unknown folder, server error)."""
    try:
        return client.models(folder)
    except ComfyError:
        return None


def check_model_file(rel: str, models_dir: Path, listing: list[str] | None) -> Row:
    """One model file: on disk below the models folder, and in ComfyUI's `/models/<folder>` listing."""
    folder, name = rel.split("/", 1)
    path = models_dir / rel
    if not path.is_file() or path.stat().st_size == 0:
        return Row(FAIL, f"model: {rel}", f"not on disk at {path}", "run the downloads step (pistachio models) or copy it there")
    size = f"{human_size(path.stat().st_size)} on disk"
    if listing is None:
        return Row(WARN, f"model: {rel}", f"{size}; ComfyUI listing not available", "start ComfyUI to confirm it sees the file")
    if name not in listing:
        return Row(FAIL, f"model: {rel}", f"{size}, but ComfyUI's /models/{folder} does not list it",
                   "ComfyUI reads another models folder: fix comfy_models_dir or extra_model_paths.yaml")
    return Row(PASS, f"model: {rel}", f"{size}; listed by ComfyUI")


def check_published_lora(ws: Path, models_dir: Path, listing: list[str] | None) -> Row:
    """The alias 04_checkpoints published: in ComfyUI's loras folder, listed, and still the content it verified."""
    from .comfy.publish import PUBLISHED_FILE, read_published
    from .downloads import sha256_file

    record = read_published(ws)
    if record is None:
        return Row(WARN, "published LoRA", f"none yet ({ws / PUBLISHED_FILE} missing)",
                   "run 04_checkpoints to its last step, or `pistachio publish-lora --params ...`")
    alias = models_dir / "loras" / record["alias"]
    if not alias.is_file():
        return Row(FAIL, "published LoRA", f"{alias} is missing", "publish again: `pistachio publish-lora --params ...`")
    if sha256_file(alias) != record["sha256"]:
        return Row(FAIL, "published LoRA", f"{alias.name} holds other content than the verified {record['file']}",
                   "it was replaced by hand: publish again, so ComfyUI checks the file workflows use")
    if listing is None:
        return Row(WARN, "published LoRA", f"{alias.name} = {record['file']}; ComfyUI listing not available",
                   "start ComfyUI to confirm it sees the file")
    if alias.name not in listing:
        return Row(FAIL, "published LoRA", f"{alias.name} = {record['file']}, but ComfyUI's /models/loras does not list it",
                   "ComfyUI reads another models folder: fix comfy_models_dir or extra_model_paths.yaml")
    return Row(PASS, "published LoRA", f"{alias.name} = {record['file']}, listed by ComfyUI")


def check_crashes(crash_log: Path) -> Row:
    """ComfyUI crashes the watchdog logged in the last 24 hours."""
    recent = recent_crashes(crash_log)
    if not recent:
        return Row(PASS, "ComfyUI crashes (24 h)", "none logged")
    last = recent[-1]
    return Row(WARN, "ComfyUI crashes (24 h)", f"{len(recent)}; last at {last['time']}: {last['reason']}, exit code "
               f"{last['exit_code']}", f"read the stderr tail in {crash_log} (OOM? a custom node?)")


def health_report(params: Any) -> pd.DataFrame:
    """Run every check for a validated SetupParams; one row per check: status, check, found, fix."""
    ws = resolve(params.workspace)  # not params.ws: that creates the folder this checks
    models_dir, output_dir = resolve(params.comfy_models_dir), resolve(params.comfy_output_dir)
    rows = [guarded("packages match pins", check_pins, resolve(params.pins_file), params.fail_on_drift),
            *check_gpu(params.require_gpu),
            check_disk(ws, "workspace", params.min_free_gb), check_disk(models_dir, "ComfyUI models", params.min_free_gb)]
    timeout = params.comfy_timeout_s
    with ComfyClient(params.comfy_url, timeout=(timeout, timeout), use_websocket=False) as client:
        comfy_row, up = check_comfy(client)
        classes = required_classes(list(params.required_node_classes), [PACKAGE_WORKFLOWS, resolve(params.workflows_dir) / "api"])
        rows += [comfy_row, check_node_classes(client, classes, up)]
        manifest = resolve(params.models_manifest) if params.models_manifest else None
        needed = guarded("models manifest", required_models, list(params.required_models), manifest, models_dir)
        if isinstance(needed, Row):  # unreadable manifest: report it, still check the listed files
            rows.append(needed)
            needed = sorted(params.required_models)
        listings = {f: model_listing(client, f) if up else None for f in {rel.split("/", 1)[0] for rel in needed}}
        rows += [check_model_file(rel, models_dir, listings[rel.split("/", 1)[0]]) for rel in needed]
        rows.append(check_published_lora(ws, models_dir, model_listing(client, "loras") if up else None))
    rows += [*check_volume(ws), check_writable(ws, "workspace"), check_writable(output_dir, "ComfyUI output"),
             check_crashes(ws / CRASH_LOG)]
    return pd.DataFrame([r.__dict__ for r in rows], columns=["status", "check", "found", "fix"])


def exit_code(report: pd.DataFrame) -> int:
    """0 when nothing failed, 1 when any row is FAIL (what cron and pod start hooks gate on)."""
    return 1 if (report["status"] == FAIL).any() else 0


def as_text(report: pd.DataFrame) -> str:
    """The checks for a terminal or a log: one line per check (status, name, what was found), its fix indented
    below when it did not pass; readable at 80 columns, where a padded table of long texts is not."""
    width = max(len(str(c)) for c in report["check"]) if len(report) else 0
    lines = []
    for row in report.itertuples():
        lines.append(f"{row.status:<4}  {str(row.check):<{width}}  {row.found}")
        if row.fix and row.status != PASS:
            lines.append(f"{'':<4}  {'':<{width}}  fix: {row.fix}")
    return "\n".join(lines)


def summary(report: pd.DataFrame) -> str:
    """`12 PASS, 1 WARN, 0 FAIL` for logs and the notebook's last line."""
    counts = report["status"].value_counts()
    return ", ".join(f"{counts.get(s, 0)} {s}" for s in (PASS, WARN, FAIL))


def require_healthy(report: pd.DataFrame) -> str:
    """The status counts when nothing FAILed; otherwise raise naming each failed check and its fix."""
    failed = report[report["status"] == FAIL]
    if len(failed):
        lines = "\n".join(f"  - {r.check}: {r.found}" + (f" -> {r.fix}" if r.fix else "") for r in failed.itertuples())
        raise HealthCheckError(f"{len(failed)} health check(s) failed:\n{lines}",
                               fix="fix the FAIL rows above, then rerun (pistachio health --params ...)")
    return summary(report)
