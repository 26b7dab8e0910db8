"""`run_batch`: a prompts file in, images + a manifest out, resumable, on ComfyUI servers and/or locally."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..comfy.client import ComfyClient
from ..comfy.errors import ComfyError
from ..display import image_grid
from ..files import write_sidecar
from ..paths import resolve
from .backends import ComfyBackend, LocalBackend
from .jobs import Defaults, Job, load_jobs
from .manifest import Manifest
from .params import BatchParams
from .scheduler import Pending, Scheduler, Target


@dataclass
class BatchResult:
    """What `run_batch` did: the batch folder and its manifest, read as tables, image paths and a grid."""

    folder: Path
    manifest: Manifest
    job_ids: list[str]
    skipped: list[str]

    @property
    def table(self) -> pd.DataFrame:
        """One row per job of this prompts file: state, server, prompt_id, files, timings, error."""
        return self.manifest.table(self.job_ids)

    @property
    def summary(self) -> pd.DataFrame:
        """Counts: done in this run, skipped (done before), failed, other (unfinished)."""
        states = self.table.set_index("job_id")["state"]
        skipped = states.index.isin(self.skipped)
        counts = {"done": int(((states == "done") & ~skipped).sum()), "skipped": int(skipped.sum()),
                  "failed": int((states == "failed").sum())}
        counts["unfinished"] = len(states) - sum(counts.values())
        return pd.DataFrame({"jobs": counts})

    @property
    def listing(self) -> pd.DataFrame:
        """`table` for reading: each job's `files` as their paths under `images/`, one per line (not a list repr)."""
        return with_paths(self.table, self.folder / "images")

    def images(self) -> list[Path]:
        """Paths of every saved image of this prompts file's jobs, in job order."""
        return [self.folder / "images" / f for files in self.table["files"].dropna() for f in files]

    def grid(self, per_backend: int = 6):
        """The first done images, one row per backend (same jobs in the same columns), labelled by seed."""
        done = self.table[self.table["state"] == "done"]
        groups = [(name, rows.head(per_backend)) for name, rows in done.groupby("backend", sort=False)]
        cells = [[self.folder / "images" / f[0] for f in rows["files"]] for _, rows in groups]
        labels = [f"seed {s} · {t[:16]}" for s, t in zip(groups[0][1]["seed"], groups[0][1]["prompt"])] if groups else []
        return image_grid(cells, row_labels=[name for name, _ in groups], col_labels=labels,
                          title=f"batch {self.folder.name}")


def with_paths(table: pd.DataFrame, folder: Path) -> pd.DataFrame:
    """A manifest table for reading: `files` lists as their paths in `folder`, one per line; no error shown as ""."""
    files = ["\n".join(str(folder.absolute() / f) for f in names) if isinstance(names, list) else "" for names in table["files"]]
    return table.assign(files=files, error=table["error"].fillna(""))


def build_backends(p: BatchParams) -> list[ComfyBackend | LocalBackend]:
    """The backends the params ask for (cheap: nothing is loaded or contacted yet)."""
    backends: list[ComfyBackend | LocalBackend] = []
    if "comfyui" in p.backends:
        backends.append(ComfyBackend(p.servers, p.workflow, p.comfy_checkpoint, p.comfy_lora, p.steps, p.cfg,
                                     per_server=p.jobs_per_server, job_timeout=p.job_timeout_seconds,
                                     request_timeout=p.request_timeout_seconds))
    if "local" in p.backends:
        from ..lora import resolve_lora  # same "recommended"/"none"/path rule as 05_inpainting

        lora = resolve_lora(p.lora, p.ws.root)
        backends.append(LocalBackend(p.model, str(lora) if lora else "", p.steps, p.cfg))
    return backends


def backend_jobs(p: BatchParams, defaults: Defaults, backend: ComfyBackend | LocalBackend) -> list[Job]:
    """The prompts file's jobs on one backend; ids hash its filled workflow and the published LoRA's content."""
    from ..comfy.errors import WorkflowError
    from ..comfy.publish import published_content

    path, settings = resolve(p.prompts_file), backend.settings()
    try:
        return load_jobs(path, defaults, settings, graph_of=getattr(backend, "graph", None),
                         lora_content=published_content(p.ws.root))
    except WorkflowError:  # bindings that do not fit cannot fill a graph: prepare() names each problem on the server
        return load_jobs(path, defaults, settings)


def plan_batch(p: BatchParams) -> pd.DataFrame:
    """The jobs the prompts file expands to, per backend, and whether a rerun will skip them (nothing runs)."""
    defaults = Defaults(p.negative, p.count, p.base_seed, p.lora_strength, p.width, p.height)
    manifest = Manifest(p.ws.batches / p.batch_name / "manifest.jsonl")
    rows = [{"backend": b.name, **j.fields(), "state": manifest.state(j.job_id) or "new"}
            for b in build_backends(p) for j in backend_jobs(p, defaults, b)]
    return pd.DataFrame(rows)


def server_table(p: BatchParams) -> pd.DataFrame:
    """Per ComfyUI server: reachable, version, queue length, and whether it has our checkpoint and LoRA."""
    rows = []
    for url in p.servers if "comfyui" in p.backends else []:
        with ComfyClient(url, timeout=(3.05, p.request_timeout_seconds), use_websocket=False) as client:
            try:
                stats, load = client.system_stats(), client.load()
                ckpts, loras = client.models("checkpoints"), client.models("loras")
            except ComfyError as err:
                rows.append({"server": url, "reachable": False, "error": str(err).splitlines()[0]})
                continue
        rows.append({"server": url, "reachable": True, "version": stats["system"].get("comfyui_version"),
                     "queue": load, "has_checkpoint": p.comfy_checkpoint in ckpts,
                     "has_lora": not p.comfy_lora or p.comfy_lora in loras})
    return pd.DataFrame(rows)


def _pending(job: Job, backend, manifest: Manifest) -> Pending:
    """A job to run; if an earlier run left its prompt queued on a server, remember where to pick it up."""
    row = manifest.latest.get(job.job_id, {})
    resume = (row["server"], row["prompt_id"]) if row.get("state") == "submitted" and row.get("prompt_id") else None
    return Pending(job, backend, resume=resume)


def run_batch(p: BatchParams) -> BatchResult:
    """Generate every job of the prompts file that is not done yet; the manifest says what happened to each."""
    folder = p.ws.batches / p.batch_name
    defaults = Defaults(p.negative, p.count, p.base_seed, p.lora_strength, p.width, p.height)
    backends = build_backends(p)
    jobs = {b.name: backend_jobs(p, defaults, b) for b in backends}
    manifest = Manifest(folder / "manifest.jsonl")
    write_sidecar(manifest.path, p)
    all_ids, skipped = run_jobs(backends, jobs, manifest, folder / "images", p.retries, p.backoff_seconds,
                                {"batch": p.batch_name})
    return BatchResult(folder, manifest, all_ids, skipped)


def run_jobs(backends: list, jobs: dict[str, list], manifest: Manifest, out_dir: Path, retries: int, backoff: float,
             meta: dict) -> tuple[list[str], list[str]]:
    """Run each backend's jobs that are not done on its targets (least busy first, retries), then close the backends.

    Returns (every job id, the ids that were done before this run).
    """
    all_ids = [j.job_id for b in backends for j in jobs[b.name]]
    skipped = [j for j in all_ids if manifest.state(j) == "done"]
    work, targets = [], []
    try:
        for backend in backends:
            todo = [j for j in jobs[backend.name] if manifest.state(j.job_id) != "done"]
            if not todo:
                continue
            down = backend.prepare(todo[0])
            manifest.record_many({j.job_id: dict(  # a submitted prompt may still be on the server: keep that state
                state="submitted" if manifest.state(j.job_id) == "submitted" else "pending",
                backend=backend.name, **j.fields()) for j in todo})
            work += [_pending(j, backend, manifest) for j in todo]
            rest = time.monotonic() + backoff  # servers down at the start are tried again later
            targets += [Target(backend, name, cap, external=0 if name in down else backend.load(name),
                               down_until=rest if name in down else 0.0, failures=int(name in down))
                        for name, cap in backend.targets.items()]
        Scheduler(manifest, out_dir, retries, backoff, meta=meta).run(work, targets)
    finally:
        for backend in backends:
            backend.close()
    return all_ids, skipped
