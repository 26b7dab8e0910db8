"""The batch manifest: one JSONL line per job state change; the last line of a job is its current state.

Append-only with fsync, so a kill at any moment loses at most the line being written, and a rerun
reads back exactly which jobs are done, which were in flight on which server, and which failed.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from ..files import append_jsonl, read_jsonl

COLUMNS = ["job_id", "state", "backend", "prompt", "seed", "lora_strength", "size", "server", "prompt_id", "attempts",
           "seconds", "files", "server_files", "error"]


class Manifest:
    """Thread-safe manifest of one batch folder (`manifest.jsonl`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.latest: dict[str, dict[str, Any]] = {}
        for row in read_jsonl(self.path):
            self.latest[row["job_id"]] = row

    def state(self, job_id: str) -> str | None:
        return self.latest.get(job_id, {}).get("state")

    def record(self, job_id: str, /, **fields: Any) -> dict[str, Any]:
        """Merge `fields` into the job's state and append it as a new line."""
        return self.record_many({job_id: fields})[0]

    def record_many(self, updates: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """Several jobs' state changes as lines appended with one fsync (a batch's initial plan)."""
        with self._lock:
            stamp = {"updated": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "t": time.time()}
            rows = [{**self.latest.get(job_id, {}), **fields, "job_id": job_id, **stamp} for job_id, fields in updates.items()]
            if len(rows) == 1:
                append_jsonl(self.path, rows[0])
            else:  # files.append_jsonl fsyncs per line; a 1000-job plan wants one fsync
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write("".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in rows))
                    fh.flush()
                    os.fsync(fh.fileno())
            self.latest.update((row["job_id"], row) for row in rows)
            return rows

    def table(self, job_ids: list[str] | None = None) -> pd.DataFrame:
        """Current state of each job (all jobs, or these in this order) as a DataFrame."""
        rows = [self.latest[j] for j in (job_ids if job_ids is not None else list(self.latest)) if j in self.latest]
        frame = pd.DataFrame(rows)
        for col in COLUMNS:
            if col not in frame:
                frame[col] = None
        if len(frame):
            frame["size"] = frame.apply(lambda r: f"{r.get('width')}x{r.get('height')}", axis=1)
        return frame[COLUMNS]
