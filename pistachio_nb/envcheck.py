"""Dependency drift check against requirements-pinned.txt, and the torch/CUDA/VRAM report."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pandas as pd

from .errors import EnvDriftError, InputDataError

_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)")


def normalize(name: str) -> str:
    """PEP 503 name normalisation, so `PyYAML` and `pyyaml` compare equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: str | Path) -> dict[str, str]:
    """Package -> exact version from a requirements file of `name==version` lines."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"pins file not found: {path}", fix="point pins_file at requirements-pinned.txt")
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line)
        if match:
            pins[normalize(match.group(1))] = match.group(2)
    return pins


def _public(version: str) -> str:
    """Drop the local label: torch `2.13.0+cpu` and `2.13.0+cu128` both satisfy the pin `2.13.0`."""
    return version.split("+", 1)[0]


def drift_table(pins_path: str | Path, installed: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per pinned package: pinned, installed, status (ok / mismatch / missing)."""
    if installed is None:
        installed = {normalize(d.metadata["Name"]): d.version for d in metadata.distributions()}
    rows = []
    for name, pinned in sorted(read_pins(pins_path).items()):
        found = installed.get(name)
        status = "missing" if found is None else ("ok" if _public(found) == _public(pinned) else "mismatch")
        rows.append({"package": name, "pinned": pinned, "installed": found or "-", "status": status})
    return pd.DataFrame(rows, columns=["package", "pinned", "installed", "status"])


def check_env(pins_path: str | Path, fail_on_drift: bool = True) -> pd.DataFrame:
    """The drift rows (mismatches and missing); raises EnvDriftError on drift when asked to."""
    table = drift_table(pins_path)
    drift = table[table["status"] != "ok"].reset_index(drop=True)
    if len(drift) and fail_on_drift:
        listed = ", ".join(f"{r.package} {r.installed} (pinned {r.pinned})" for r in drift.itertuples())
        raise EnvDriftError(
            f"{len(drift)} package(s) drifted from {pins_path}: {listed}",
            fix=f"reinstall the tested set: pip install -r {pins_path} (or `make setup`)",
        )
    return drift


def torch_report() -> pd.DataFrame:
    """torch version, CUDA availability, GPU name and free/total VRAM, CPU threads, as check/value rows."""
    import torch

    rows = [("torch", torch.__version__), ("CUDA available", str(torch.cuda.is_available()))]
    rows.append(("CPU threads", str(torch.get_num_threads())))
    if torch.cuda.is_available():
        rows.append(("CUDA (torch build)", str(torch.version.cuda)))
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            rows.append((f"GPU {i}", torch.cuda.get_device_name(i)))
            rows.append((f"GPU {i} VRAM free / total", f"{free / 2**30:.1f} / {total / 2**30:.1f} GiB"))
    return pd.DataFrame(rows, columns=["check", "value"])
