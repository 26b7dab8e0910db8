"""Resumable training states: LoRA weights, optimizer, LR schedule, EMA, every RNG and the data position.

A state folder is written whole or not at all (temp folder, then rename). Resuming restores all of
it, so N steps in one run and N/2 + N/2 across a restart give the same weights.
"""

from __future__ import annotations

import random
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from peft.utils import set_peft_model_state_dict
from safetensors.torch import load_file, save_file

from ..dirs import atomic_dir
from ..errors import InputDataError
from ..files import read_json, write_json
from .ema import AdapterEma
from .export import lora_state_dicts

STATE_DIR = re.compile(r"^step-(\d{8})$")
CHECKPOINT_INFO = "checkpoint.json"  # the manifest row's losses and the run's start, to finish exports on resume
_TMP = r"\.[a-z0-9_]+\.tmp"  # the random part `tempfile` adds in `atomic_path` / `atomic_dir`
_STEP = r"\.step-\d{8}"


@dataclass
class Progress:
    """Where training stands: optimizer steps done, epoch, and the next optimizer step within the epoch."""

    step: int = 0
    epoch: int = 0
    position: int = 0


@dataclass
class RngState:
    """Every random stream the loop draws from."""

    noise: torch.Generator  # noise and timesteps
    python: random.Random  # caption shuffling

    def dump(self) -> dict:
        return {"noise": self.noise.get_state(), "python": self.python.getstate(), "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}  # fmt: skip

    def load(self, saved: dict) -> None:
        self.noise.set_state(saved["noise"])
        self.python.setstate(saved["python"])
        torch.set_rng_state(saved["torch"])
        if saved["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(saved["cuda"])


def state_path(root: Path, step: int) -> Path:
    return root / f"step-{step:08d}"


def save_state(root: Path, pipe, optimizer, lr_scheduler, rng: RngState, progress: Progress, params: dict,
               info: dict | None = None, ema: AdapterEma | None = None) -> Path:  # fmt: skip
    """Write `root/step-XXXXXXXX/` atomically: lora.safetensors, state.pt (with the EMA), params.json, checkpoint.json (`info`)."""
    with atomic_dir(state_path(root, progress.step)) as tmp:
        flat = {f"{c}::{k}": v for c, state in lora_state_dicts(pipe).items() for k, v in state.items()}
        save_file(flat, tmp / "lora.safetensors")
        torch.save({"optimizer": optimizer.state_dict(), "lr_scheduler": lr_scheduler.state_dict(),
                    "rng": rng.dump(), "progress": asdict(progress),
                    "ema": ema.state_dict() if ema else None}, tmp / "state.pt")  # fmt: skip
        write_json(tmp / "params.json", params)
        write_json(tmp / CHECKPOINT_INFO, info or {})
    return state_path(root, progress.step)


def saved_states(root: Path) -> list[Path]:
    """Complete state folders under `root`, oldest first (temp folders never match the name)."""
    found = [p for p in root.glob("step-*") if STATE_DIR.match(p.name) and (p / "state.pt").exists()]
    return sorted(found)


def find_state(root: Path, resume: str) -> Path | None:
    """The state to resume from: None for a fresh start, the newest for 'latest', else the given folder."""
    if not resume:
        return None
    if resume == "latest":
        states = saved_states(root)
        return states[-1] if states else None
    path = Path(resume).expanduser()
    if not (path / "state.pt").exists():
        raise InputDataError(
            f"resume: {resume!r} is not a saved training state (no state.pt there)",
            fix=f"use 'latest', '' for a fresh start, or one of the folders in {root}",
        )
    return path


def load_state(path: Path, pipe, optimizer, lr_scheduler, rng: RngState, ema: AdapterEma | None = None) -> Progress:
    """Restore LoRA weights, optimizer, LR schedule, RNG and EMA from a state folder; returns the progress.

    A state saved without EMA restarts `ema` from the restored weights (EMA switched on mid-run)."""
    flat = load_file(path / "lora.safetensors")
    for component in {k.split("::", 1)[0] for k in flat}:
        state = {k.split("::", 1)[1]: v for k, v in flat.items() if k.startswith(component + "::")}
        set_peft_model_state_dict(getattr(pipe, component), state)
    saved = torch.load(path / "state.pt", weights_only=False)
    optimizer.load_state_dict(saved["optimizer"])
    lr_scheduler.load_state_dict(saved["lr_scheduler"])
    rng.load(saved["rng"])
    if ema is not None and saved.get("ema"):
        ema.load_state_dict(saved["ema"])
    elif ema is not None:
        ema.restart()
    return Progress(**saved["progress"])


def saved_params(path: Path) -> dict:
    return read_json(path / "params.json")


def saved_info(path: Path) -> dict:
    """What `save_state` kept for the step's manifest row ({} for a state written before it did)."""
    return read_json(path / CHECKPOINT_INFO) if (path / CHECKPOINT_INFO).exists() else {}


def stale_temps(out: Path, output_name: str) -> list[Path]:
    """Temp files and folders a killed training process left in `out` (only names this package writes there)."""
    name = re.escape(output_name)
    patterns = {  # folder -> full-name patterns of atomic_dir/atomic_path temps, replace_dir and prune_states leftovers
        out: [rf"\.{name}(-ema)?(-step-\d{{8}})?\.safetensors(\.params\.json)?{_TMP}",
              rf"\.(checkpoints\.jsonl|metrics\.csv|validation\.csv){_TMP}"],
        out / "state": [_STEP + _TMP, rf"{_STEP}\.deleting", rf"{_STEP}\.old-\d+"],
        out / "diffusers": [_STEP + _TMP, rf"{_STEP}\.old-\d+"],
    }
    patterns |= {d: [rf"\.p\d+-s\d+\.png{_TMP}"] for d in (out / "samples").glob("step-*") if STATE_DIR.match(d.name)}
    found = []
    for folder, names in patterns.items():
        if folder.is_dir():
            found += sorted(f for f in folder.iterdir() if any(re.fullmatch(n, f.name) for n in names))
    return found


def remove_stale_temps(out: Path, output_name: str) -> list[Path]:
    """Delete what `stale_temps` finds (a killed save may leave ~0.5 GB per state temp folder)."""
    found = stale_temps(out, output_name)
    for path in found:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return found


def prune_states(root: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` training states (they are large: optimizer moments)."""
    old = saved_states(root)[:-keep]
    for path in old:
        doomed = path.with_name(f".{path.name}.deleting")  # renamed first: never seen half-deleted
        path.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)
    return old
