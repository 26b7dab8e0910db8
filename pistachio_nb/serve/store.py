"""The durable job store: one SQLite file in WAL mode, so a restarted API loses and repeats nothing.

The interface is narrow on purpose (submit, get, claim, record, recover, count): moving to a shared
database or queue when one API host is not enough means rewriting this one module (docs/serve.md).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    idem_key TEXT,
    request_hash TEXT NOT NULL,
    request TEXT NOT NULL,
    state TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    server TEXT,
    prompt_id TEXT,
    files TEXT,
    error TEXT,
    UNIQUE (key_id, idem_key)
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, created);
CREATE INDEX IF NOT EXISTS jobs_key_created ON jobs (key_id, created);
"""
# scheduler states (batch/scheduler.py) -> what a client sees
PUBLIC_STATE = {"queued": "queued", "claimed": "queued", "pending": "queued", "retrying": "queued",
                "submitted": "running", "running": "running", "done": "done", "failed": "failed"}
COLUMNS = ("state", "attempts", "server", "prompt_id", "files", "error", "started", "finished")


@dataclass(frozen=True)
class StoredJob:
    id: str
    key_id: str
    request: dict[str, Any]
    state: str
    created: float
    started: float | None
    finished: float | None
    attempts: int
    server: str | None
    prompt_id: str | None
    files: list[str]
    error: str | None

    @property
    def public_state(self) -> str:
        return PUBLIC_STATE[self.state]


class IdempotencyConflict(Exception):
    """The same idempotency key was sent before with a different request body."""


def request_hash(request: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


class JobStore:
    """Jobs of every API key, in one SQLite file; safe to share between the HTTP threads and the dispatcher."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()  # one connection per thread: WAL readers never wait for the writer
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._conn().executescript(SCHEMA)
        self.path.chmod(0o600)  # prompts are the clients' data

    def _conn(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)  # closed by close()
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit survives the API being killed (the OS holds the WAL); only a power cut
            # can lose the last commits (sqlite.org/pragma.html#pragma_synchronous)
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
            with self._all_lock:
                self._all.append(db)
        return db

    def close(self) -> None:
        with self._all_lock:
            for db in self._all:
                db.close()
            self._all.clear()
        self._local = threading.local()

    def submit(self, key_id: str, request: dict[str, Any], idem_key: str | None = None,
               sent: dict[str, Any] | None = None) -> tuple[StoredJob, bool]:
        """Store a new queued job; with an idempotency key seen before, return that job instead (created=False).

        `request` is the job with every default filled in (a random seed among them); `sent` is what the client sent,
        which the idempotency check compares (a retried request gets the same job, not a second random seed).
        """
        sent = request if sent is None else sent
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")  # lookup and insert in one write transaction: two racing twins make one job
        try:
            found = self._find(key_id, idem_key, sent) if idem_key is not None else None
            created = found is None
            if created:
                job_id = secrets.token_hex(12)  # unguessable: an id alone never reveals another client's job
                db.execute(
                    "INSERT INTO jobs (id, key_id, idem_key, request_hash, request, state, created) VALUES (?,?,?,?,?,?,?)",
                    (job_id, key_id, idem_key, request_hash(sent), json.dumps(request), "queued", time.time()))
                found = _job(db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone())
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return found, created

    def by_idempotency(self, key_id: str, idem_key: str, sent: dict[str, Any]) -> StoredJob | None:
        """The job this key already made with this idempotency key (None if none); a different body is a conflict."""
        return self._find(key_id, idem_key, sent)

    def _find(self, key_id: str, idem_key: str, sent: dict[str, Any]) -> StoredJob | None:
        row = self._conn().execute("SELECT * FROM jobs WHERE key_id=? AND idem_key=?", (key_id, idem_key)).fetchone()
        if row is not None and row["request_hash"] != request_hash(sent):
            raise IdempotencyConflict(idem_key)
        return _job(row) if row else None

    def get(self, job_id: str) -> StoredJob | None:
        row = self._conn().execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return _job(row) if row else None

    def claim(self, limit: int) -> list[StoredJob]:
        """Take up to `limit` queued jobs, oldest first, for the dispatcher (queued -> claimed, atomically)."""
        rows = self._conn().execute("UPDATE jobs SET state='claimed' WHERE id IN (SELECT id FROM jobs WHERE state='queued' "
                                    "ORDER BY created LIMIT ?) RETURNING *", (limit,)).fetchall()
        return sorted((_job(r) for r in rows), key=lambda j: j.created)

    def record(self, job_id: str, /, **fields: Any) -> None:
        """A state change from the scheduler (its manifest's `record`); fields the store has no column for are dropped."""
        values = {k: v for k, v in fields.items() if k in COLUMNS}
        if "files" in values:
            values["files"] = json.dumps(values["files"])
        now = time.time()
        if values.get("state") in ("submitted", "running"):
            values["started"] = now
        if values.get("state") in ("done", "failed"):
            values["finished"] = now
        if not values:
            return
        sets = ", ".join(f"{k}=?" for k in values)
        self._conn().execute(f"UPDATE jobs SET {sets} WHERE id=?", (*values.values(), job_id))

    def recover(self) -> int:
        """At start: jobs a stopped API had claimed but not handed to ComfyUI go back to the queue; returns how many.

        Jobs already submitted keep their server and prompt id: the dispatcher picks those prompts up where they run.
        """
        return self._conn().execute("UPDATE jobs SET state='queued' WHERE state IN ('claimed', 'pending', 'retrying')").rowcount

    def unfinished_submitted(self) -> list[StoredJob]:
        """Jobs a stopped API had handed to a server (resumed by prompt id rather than run again)."""
        rows = self._conn().execute("SELECT * FROM jobs WHERE state IN ('submitted', 'running') ORDER BY created").fetchall()
        return [_job(r) for r in rows]

    def count_since(self, key_id: str, since: float) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM jobs WHERE key_id=? AND created>=?", (key_id, since)).fetchone()[0]

    def counts(self) -> dict[str, int]:
        rows = self._conn().execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        return {r[0]: r[1] for r in rows}


def _job(row: sqlite3.Row) -> StoredJob:
    return StoredJob(id=row["id"], key_id=row["key_id"], request=json.loads(row["request"]), state=row["state"],
                     created=row["created"], started=row["started"], finished=row["finished"], attempts=row["attempts"],
                     server=row["server"], prompt_id=row["prompt_id"], files=json.loads(row["files"] or "[]"),
                     error=row["error"])
