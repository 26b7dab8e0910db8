"""Ingest: list the source folder, then probe each file (validate, decode to the end, hash, blur score).

A probe returns one small manifest row (no pixels), so memory does not grow with the folder size.
Rows of files unchanged since the last run (same size and mtime, same probe settings) are reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

from .decode import Limits, RejectedImage, decode_upright, open_checked
from .hashing import perceptual_hash
from .pool import parallel_map
from .quality import ANALYSIS_SIDE, analysis_size, blur_score

PROBE_VERSION = 3  # bump when probe results change meaning, so cached rows are measured again
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp"}
USER_CAPTION_MAX_BYTES = 64 * 1024  # a caption, not a document
SKIP_HINTS = {ext: ": iPhone HEIC/HEIF is not supported, export it as JPEG" for ext in (".heic", ".heif")}


@dataclass(frozen=True)
class ProbeConfig:
    """Everything a probe's result depends on; its fingerprint decides whether old rows can be reused."""

    source_dir: str
    min_side: int
    max_pixels: int
    algorithm: str
    background: tuple[int, int, int]

    def fingerprint(self) -> str:
        settings = {**asdict(self), "version": PROBE_VERSION}
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def list_sources(root: Path) -> list[Path]:
    """Every entry below `root` that is not a folder (recursive, sorted, hidden folders skipped): files, and
    also broken symlinks, symlink loops and FIFOs, so each gets a manifest row saying why it was skipped."""
    return sorted(
        p for p in root.rglob("*")
        if (p.is_symlink() or not p.is_dir()) and not any(part.startswith(".") for part in p.relative_to(root).parts[:-1])
    )


def unusable_reason(path: Path) -> str:
    """Why `path` cannot be read as a file ("" if it can): a broken symlink, a loop, a FIFO or a device."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return f"skipped: broken symlink (its target {os.readlink(path)} does not exist)"
    except OSError as err:  # ELOOP for a symlink loop
        return f"skipped: cannot follow ({err.strerror or err})"
    if not stat.S_ISREG(mode):
        kind = "FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device or special file"
        return f"skipped: not a regular file ({kind})"
    return ""


def user_caption(source_dir: str | Path, rel: str) -> str:
    """The caption a user keeps beside an image (`photo.jpg` -> `photo.txt`, kohya's habit), or ""."""
    path = (Path(source_dir) / rel).with_suffix(".txt")
    if not path.is_file() or path.stat().st_size > USER_CAPTION_MAX_BYTES:
        return ""
    return path.read_text(encoding="utf-8", errors="replace").strip()


def caption_owner(path: Path) -> str:
    """For a `.txt` beside an image, that image's name ("" otherwise): the file is its caption, not junk."""
    if path.suffix.lower() != ".txt":
        return ""
    return next((p.name for ext in IMAGE_EXTENSIONS for p in (path.with_suffix(ext), path.with_suffix(ext.upper()))
                 if p.is_file()), "")


def outside_source(path: Path, root: Path) -> bool:
    """True for a symlink whose target lies outside the source folder (followed, but flagged)."""
    return path.is_symlink() and not path.resolve().is_relative_to(root.resolve())


def probe_file(job: tuple[str, ProbeConfig]) -> dict:
    """Manifest row for one file: status ok|rejected|skipped, reason, sha256, perceptual hash, size, blur."""
    rel, cfg = job
    path = Path(cfg.source_dir) / rel
    if reason := unusable_reason(path):
        return {"path": rel, "status": "skipped", "reason": reason.removeprefix("skipped: ")}
    st = path.stat()
    row = {"path": rel, "status": "ok", "reason": "", "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if outside_source(path, Path(cfg.source_dir)):
        row["outside"] = True
    if owner := caption_owner(path):
        return {**row, "status": "skipped", "reason": f"caption of {owner}: its starting caption (this file is never changed)"}
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        hint = SKIP_HINTS.get(path.suffix.lower(), "")
        return {**row, "status": "skipped", "reason": f"not an image extension ({path.suffix or 'none'}){hint}"}
    try:
        _measure(row, path.read_bytes(), cfg)
    except RejectedImage as err:
        row.update(status="rejected", reason=str(err))
    except Exception as err:  # a malformed file can trip any decoder path; it must never stop the run
        row.update(status="rejected", reason=f"unreadable ({type(err).__name__}: {err})")
    return row


def _measure(row: dict, data: bytes, cfg: ProbeConfig) -> None:
    """Fill `row` with content hash, format, upright size, perceptual hash and blur score (raises on bad data)."""
    row["hash"] = hashlib.sha256(data).hexdigest()
    im, (w, h) = open_checked(data, Limits(cfg.min_side, cfg.max_pixels))
    row.update(format=im.format, mode=im.mode, width=w, height=h)
    gray = decode_upright(im, analysis_size(w, h), cfg.background, mode="L")
    if min(gray.size) >= 2 * ANALYSIS_SIDE:  # a PNG/WebP, or a JPEG beyond 1/8 scale: the cheap integer reduction
        gray = gray.reduce(min(gray.size) // ANALYSIS_SIDE)
    row["phash"] = perceptual_hash(gray, cfg.algorithm)  # on this copy, not a further resize: close to plain imagehash
    row["blur"] = round(blur_score(gray.resize(analysis_size(w, h), Image.Resampling.BOX)), 2)


def probe_all(cfg: ProbeConfig, rels: list[str], previous: dict[str, dict], workers: int) -> tuple[list[dict], int]:
    """Rows for `rels` in order, reusing `previous` rows (by path) whose size and mtime still match.

    Returns (rows, number of files actually probed this run).
    """
    root = Path(cfg.source_dir)
    rows: dict[str, dict] = {}
    todo = []
    for rel in rels:
        old = previous.get(rel)
        if unusable_reason(root / rel):
            todo.append(rel)
            continue
        st = (root / rel).stat()
        if old and old.get("size") is not None and int(old["size"]) == st.st_size and int(old["mtime_ns"]) == st.st_mtime_ns:
            rows[rel] = old
        else:
            todo.append(rel)
    jobs = [(rel, cfg) for rel in todo]
    for row in parallel_map(probe_file, jobs, workers, "probe", preload=__name__):
        rows[row["path"]] = row
    return [rows[rel] for rel in rels], len(todo)
