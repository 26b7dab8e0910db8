"""Training curves as TensorBoard event files and plain CSVs (step, loss, LR; validation loss).

On resume, rows and events after the resumed step are dropped, so the curves show one history.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..files import write_text

TRAIN_FIELDS = ["step", "epoch", "loss", "lr_unet", "lr_text", "seconds"]
VALIDATION_FIELDS = ["step", "val_loss"]


def _rows_up_to(path: Path, step: int) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return [r for r in csv.DictReader(fh) if int(r["step"]) <= step]


def _write_csv(path: Path, fields: list[str], rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


class TrainLog:
    """Append-only CSVs plus a TensorBoard writer, both truncated to `start_step` when resuming; close() when done."""

    def __init__(self, folder: Path, start_step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.train_csv, self.val_csv = folder / "metrics.csv", folder / "validation.csv"
        _write_csv(self.train_csv, TRAIN_FIELDS, _rows_up_to(self.train_csv, start_step))
        _write_csv(self.val_csv, VALIDATION_FIELDS, _rows_up_to(self.val_csv, start_step))
        self.writer = SummaryWriter(str(folder / "tensorboard"), purge_step=start_step + 1 if start_step else None)
        self.files = [path.open("a", newline="", encoding="utf-8") for path in (self.train_csv, self.val_csv)]
        self.rows = [csv.DictWriter(fh, fieldnames=f) for fh, f in zip(self.files, (TRAIN_FIELDS, VALIDATION_FIELDS))]

    def _append(self, which: int, row: dict) -> None:
        self.rows[which].writerow(row)
        self.files[which].flush()  # a crash loses at most the row being written

    def train(self, row: dict) -> None:
        self._append(0, row)
        self.writer.add_scalar("train/loss", row["loss"], row["step"])
        self.writer.add_scalar("train/lr_unet", row["lr_unet"], row["step"])
        if row["lr_text"]:
            self.writer.add_scalar("train/lr_text", row["lr_text"], row["step"])

    def validation(self, step: int, val_loss: float) -> None:
        self._append(1, {"step": step, "val_loss": val_loss})
        self.writer.add_scalar("validation/loss", val_loss, step)

    def close(self) -> None:
        self.writer.close()
        for fh in self.files:
            fh.close()
