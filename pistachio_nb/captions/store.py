"""Where captions live: `.txt` sidecars (what kohya trains on) and `metadata.jsonl` `text`, kept equal.

Rules: the sidecar wins when the two disagree (it is what people hand-edit); a caption is replaced
only on purpose and its previous text is first copied to `caption_backups/<run>/<file_name>.txt`;
every write is atomic and metadata.jsonl is rewritten after each batch, so an interrupted run
loses at most the batch in flight and a rerun continues from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..dataset.layout import METADATA
from ..errors import InputDataError
from ..files import read_jsonl, write_jsonl, write_text

BACKUPS = "caption_backups"


def sidecar_path(root: Path, file_name: str) -> Path:
    """The kohya caption file beside the image: same name, `.txt`."""
    return (root / file_name).with_suffix(".txt")


def load_rows(root: Path) -> list[dict]:
    """The dataset's metadata rows; a clear error when the dataset stage has not run or images are missing."""
    path = root / METADATA
    rows = read_jsonl(path)
    if not rows:
        raise InputDataError(f"{path} is missing or empty", fix="run 01_dataset first (same workspace)")
    missing = [r.get("file_name") for r in rows if not r.get("file_name") or not (root / r["file_name"]).is_file()]
    if missing:
        raise InputDataError(
            f"{path} lists {len(missing)} image(s) that do not exist, e.g. {missing[0]!r}",
            fix="rerun 01_dataset to rebuild the dataset folder",
        )
    return rows


def current_caption(root: Path, row: dict) -> str:
    """The caption an image has now: its sidecar if non-empty, else metadata `text`."""
    sidecar = sidecar_path(root, row["file_name"])
    text = sidecar.read_text(encoding="utf-8").strip() if sidecar.is_file() else ""
    return text or str(row.get("text") or "").strip()


def sync_existing(root: Path, rows: list[dict]) -> list[str]:
    """Make sidecars and metadata agree before any work (sidecar wins); returns the file names fixed."""
    fixed = []
    for row in rows:
        text, sidecar = current_caption(root, row), sidecar_path(root, row["file_name"])
        stale_sidecar = not sidecar.is_file() or sidecar.read_text(encoding="utf-8").strip() != text
        if stale_sidecar:
            write_text(sidecar, text)
        stale_metadata = (row.get("text") or "") != text
        if stale_metadata:
            row.update(text=text, caption_source="sidecar", caption_key="")
        if stale_sidecar or stale_metadata:
            fixed.append(row["file_name"])
    if fixed:
        write_jsonl(root / METADATA, rows)
    return fixed


@dataclass
class CaptionStore:
    """Writes captions for one run: backups go to one folder per run, named by its UTC start time."""

    root: Path
    rows: list[dict]
    run_stamp: str = ""

    def __post_init__(self) -> None:
        self.run_stamp = self.run_stamp or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        self.by_name = {r["file_name"]: r for r in self.rows}

    @property
    def backup_dir(self) -> Path:
        return self.root / BACKUPS / self.run_stamp

    def backup_path(self, file_name: str) -> Path:
        """Where this run keeps the text a caption had before it was replaced."""
        return sidecar_path(self.backup_dir, file_name)

    def save(self, captions: dict[str, str], source: str, key: str = "") -> list[str]:
        """Write each `file_name -> text` to sidecar + metadata, backing up replaced text; returns names backed up."""
        backed_up = []
        for name, text in captions.items():
            row = self.by_name[name]
            old = current_caption(self.root, row)
            if old and old != text:
                write_text(self.backup_path(name), old)
                backed_up.append(name)
            write_text(sidecar_path(self.root, name), text)
            row.update(text=text, caption_source=source, caption_key=key)
        write_jsonl(self.root / METADATA, self.rows)
        return backed_up
