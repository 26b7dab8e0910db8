"""Safe writes: temp file then rename, so a crash never leaves a half-written artifact; plus JSONL and sidecars."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def current_umask() -> int:
    """The process umask, read without changing it where Linux shows it (else set and restored at once)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `dest`; on success it is renamed over `dest`, on error removed.

    The file gets the mode a plain `open()` would give (0666 less the umask), not mkstemp's 0600.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.fchmod(fd, 0o666 & ~current_umask())
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(dest: str | Path, data: bytes) -> Path:
    """Atomically write bytes."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_text(dest: str | Path, text: str) -> Path:
    """Atomically write UTF-8 text."""
    return write_bytes(dest, text.encode("utf-8"))


def write_json(dest: str | Path, obj: Any) -> Path:
    """Atomically write pretty JSON (paths and other objects via str)."""
    return write_text(dest, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_jsonl(dest: str | Path, rows: Iterable[dict]) -> Path:
    """Atomically write one JSON object per line."""
    return write_text(dest, "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in rows))


def append_jsonl(dest: str | Path, row: dict) -> None:
    """Append one line and fsync: a crash loses at most the line being written."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, sort_keys=True, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: str | Path) -> list[dict]:
    """Rows of a JSONL file; a torn last line (crash mid-write) is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def write_sidecar(artifact: str | Path, params: Any, **extra: Any) -> Path:
    """Write `<artifact>.params.json` holding the params (pydantic model or dict) that made it."""
    data = params.model_dump(mode="json") if hasattr(params, "model_dump") else dict(params)
    sidecar = Path(f"{artifact}.params.json")
    return write_json(sidecar, {"params": data, **extra})


def write_csv(dest: str | Path, table: Any) -> Path:
    """Atomically write a pandas DataFrame as CSV (no index)."""
    with atomic_path(dest) as tmp:
        table.to_csv(tmp, index=False)
    return Path(dest)


def read_yaml(path: str | Path, error: type[Exception], what: str, fix: str = "", max_bytes: int | None = None) -> Any:
    """Parse a YAML file as plain data; a missing, oversized, non-UTF-8 or unsafe file raises `error` naming the file.

    Strict (`pistachio_nb.yaml_load`): no anchors/aliases, no duplicate keys, bounded nesting, at most
    `max_bytes` (1 MiB) read, so a hostile profile fails fast with a short message instead of eating memory.
    """
    from .yaml_load import MAX_BYTES, StrictYAMLError, load_strict

    path = Path(path)
    limit = MAX_BYTES if max_bytes is None else max_bytes
    if not path.is_file():
        raise error(f"{what} not found: {path}", fix=fix) if fix else error(f"{what} not found: {path}")
    with path.open("rb") as fh:
        raw = fh.read(limit + 1)
    if len(raw) > limit:
        raise error(f"{path}: {what} is larger than {limit // 1024} KiB; refusing to read it",
                    fix="a YAML file of this kind is a few KiB: check that the path points at the right file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise error(f"{path}: not UTF-8 text (byte {err.start}, line {line})",
                    fix="save the file as UTF-8") from None
    try:
        return load_strict(text)
    except StrictYAMLError as err:
        raise error(f"{path}: not valid YAML: {err}", fix="fix the YAML at the line shown") from None
