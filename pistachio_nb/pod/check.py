"""`check_pod`: the whole 00_setup stage in one call, shared by the notebook and `pistachio health`.

Runs, in order: the drift check, the torch/CUDA table, the model downloads, the health rows and the
workflow pull, then writes each table as CSV (with a params sidecar) into `<workspace>/setup/`. It never
raises for a failed check: a failure is a row (drift with `fail_on_drift` and every other problem
is a FAIL row of the health table), and `PodReport.require_healthy()` is the one gate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..envcheck import drift_table, torch_report
from ..errors import PistachioError
from ..files import write_csv, write_sidecar
from ..health import exit_code, health_report, require_healthy, summary
from ..paths import resolve
from ..secrets import scrub, scrub_table
from ..workflow_convert import WORKFLOW_COLUMNS, pull_workflows
from .params import SetupParams

TABLES = ("drift", "environment", "models", "health", "workflows")  # also the CSV names under setup/
MODEL_COLUMNS = ["name", "file", "status", "MiB", "seconds", "detail"]


@dataclass(frozen=True)
class PodReport:
    """The five tables of one pod check and the folder they were written to."""

    folder: Path
    drift: pd.DataFrame  # pinned packages that differ (empty = the tested set)
    environment: pd.DataFrame  # torch, CUDA, GPUs and VRAM as check/value rows
    models: pd.DataFrame  # one row per manifest file: present / downloaded / failed
    health: pd.DataFrame  # status, check, found, fix
    workflows: pd.DataFrame  # one row per workflow saved in ComfyUI

    @property
    def summary(self) -> str:
        """`12 PASS, 1 WARN, 0 FAIL` of the health table."""
        return summary(self.health)

    @property
    def overview(self) -> pd.DataFrame:
        """One row per step: how many rows its table has, the gist, and the CSV it was written to."""
        gist = {
            "drift": f"{len(self.drift)} package(s) differ from the pins",
            "environment": "; ".join(f"{r.check}: {r.value}" for r in self.environment.head(2).itertuples()),
            "models": _counts(self.models, "status") or "no models manifest",
            "health": self.summary,
            "workflows": _counts(self.workflows, "api_status") or "no workflow saved in ComfyUI (or not reachable)",
        }
        return pd.DataFrame([{"step": name, "rows": len(getattr(self, name)), "result": gist[name],
                              "file": str(self.folder / f"{name}.csv")} for name in TABLES])

    @property
    def exit_code(self) -> int:
        """0 when no health row FAILed, else 1 (what cron gates on)."""
        return exit_code(self.health)

    def require_healthy(self) -> str:
        """The health counts when nothing FAILed; otherwise raise HealthCheckError naming each failed check."""
        return require_healthy(self.health)


def _counts(table: pd.DataFrame, column: str) -> str:
    return ", ".join(f"{n} {state}" for state, n in table[column].value_counts().items()) if len(table) else ""


def drift_rows(p: SetupParams) -> pd.DataFrame:
    """Pinned packages whose installed version differs or is missing (whether that FAILs is the health row's call)."""
    table = drift_table(resolve(p.pins_file))
    return table[table["status"] != "ok"].reset_index(drop=True)


def ensure_manifest_models(p: SetupParams) -> pd.DataFrame:
    """Download and verify the manifest's models; an unreadable manifest becomes one failed row, not an exception."""
    from ..downloads import ensure_models

    try:
        return scrub_table(ensure_models(p.models_manifest, p.comfy_models_dir))  # details quote URLs
    except PistachioError as err:
        row = {"name": "(models manifest)", "file": str(p.models_manifest), "status": "failed", "MiB": None,
               "seconds": 0.0, "detail": scrub(str(err).splitlines()[0])}
        return pd.DataFrame([row], columns=MODEL_COLUMNS)


def pull_saved_workflows(p: SetupParams) -> pd.DataFrame:
    """Pull ComfyUI's saved workflows into `workflows_dir`; none when ComfyUI does not answer (the health table says why)."""
    try:
        return pull_workflows(p.comfy_url, p.workflows_dir, timeout=p.comfy_timeout_s)
    except PistachioError:
        return pd.DataFrame(columns=WORKFLOW_COLUMNS)


def check_pod(p: SetupParams) -> PodReport:
    """Drift, environment, model downloads, health, workflow pull; each written to `<workspace>/setup/<table>.csv`."""
    folder = p.ws.sub("setup")
    drift, environment, models = drift_rows(p), torch_report(), ensure_manifest_models(p)
    health = health_report(p)  # after the downloads, so it sees the files they installed
    report = PodReport(folder, drift, environment, models, health, pull_saved_workflows(p))
    for name in TABLES:
        write_csv(folder / f"{name}.csv", scrub_table(getattr(report, name)))
        write_sidecar(folder / f"{name}.csv", p)
    return report
