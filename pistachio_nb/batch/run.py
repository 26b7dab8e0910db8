"""`run_batch`: a prompts file in, images + a manifest out, resumable, on ComfyUI servers and/or locally."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..display import image_grid
from ..files import write_sidecar
from ..params import BatchParams
from ..paths import resolve
from .backends import ComfyBackend, LocalBackend
from .jobs import Defaults, Job, load_jobs
from .manifest import Manifest
from .scheduler import Pending, Scheduler, Target


@dataclass
class BatchResult:
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

    def images(self) -> list[Path]:
        return [self.folder / "images" / f for files in self.table["files"].dropna() for f in files]

    def grid(self, max_images: int = 12, per_row: int = 4):
        """The first images as a grid, labelled with seed and backend."""
        done = self.table[self.table["state"] == "done"].head(max_images)
        cells = [(self.folder / "images" / r.files[0], f"{r.backend} seed {r.seed}") for r in done.itertuples()]
        rows = [cells[i:i + per_row] for i in range(0, len(cells), per_row)]
        return image_grid([[c[0] for c in row] for row in rows], title=f"batch {self.folder.name}",
                          col_labels=[c[1] for c in rows[0]] if rows else None)


def build_backends(p: BatchParams) -> list[ComfyBackend | LocalBackend]:
    """The backends the params ask for (cheap: nothing is loaded or contacted yet)."""
    backends: list[ComfyBackend | LocalBackend] = []
    if "comfyui" in p.backends:
        backends.append(ComfyBackend(p.servers, p.workflow, p.comfy_checkpoint, p.comfy_lora, p.steps, p.cfg,
                                     per_server=p.jobs_per_server, job_timeout=p.job_timeout_seconds,
                                     request_timeout=p.request_timeout_seconds))
    if "local" in p.backends:
        from ..inpainting.stage import resolve_lora  # same "recommended"/"none"/path rule as 05_inpainting

        lora = resolve_lora(p)
        backends.append(LocalBackend(p.model, str(lora) if lora else "", p.steps, p.cfg))
    return backends


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
    jobs = {b.name: load_jobs(resolve(p.prompts_file), defaults, b.settings()) for b in backends}
    manifest = Manifest(folder / "manifest.jsonl")
    write_sidecar(manifest.path, p)
    all_ids = [j.job_id for b in backends for j in jobs[b.name]]
    skipped = [j for j in all_ids if manifest.state(j) == "done"]
    work, targets = [], []
    try:
        for backend in backends:
            todo = [j for j in jobs[backend.name] if manifest.state(j.job_id) != "done"]
            if not todo:
                continue
            backend.prepare(todo[0])
            for job in todo:
                keep = manifest.state(job.job_id) == "submitted"  # its prompt may still be on the server
                manifest.record(job.job_id, state="submitted" if keep else "pending", backend=backend.name, **job.fields())
            work += [_pending(j, backend, manifest) for j in todo]
            targets += [Target(backend, name, cap, external=backend.load(name)) for name, cap in backend.targets.items()]
        Scheduler(manifest, folder / "images", p.retries, p.backoff_seconds, meta={"batch": p.batch_name}).run(work, targets)
    finally:
        for backend in backends:
            backend.close()
    return BatchResult(folder, manifest, all_ids, skipped)
