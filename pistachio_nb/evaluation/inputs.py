"""What a comparison reads: the LoRA checkpoints, the reference / training photos and the prompts.

Everything here is cheap and runs before any model loads, so a missing file fails in a second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from safetensors import safe_open

from ..errors import InputDataError
from ..files import read_jsonl

KOHYA_PREFIXES = ("lora_unet_", "lora_te")  # kohya / ComfyUI key names (A1111, civitai read the same)
EMA_NAME = re.compile(r"-ema(-step-\d+)?$")  # 03_training's EMA exports: <name>-ema-step-00000100, <name>-ema


@dataclass(frozen=True)
class Checkpoint:
    """One row of the grid: a LoRA file at a training step, or the base model alone (`path` None, step 0)."""

    name: str
    step: int
    path: Path | None

    @property
    def is_base(self) -> bool:
        return self.path is None


BASE = Checkpoint(name="base", step=0, path=None)


def is_kohya_lora(path: Path) -> bool:
    """True when the file's tensor names are kohya-style (`lora_unet_...`), the format ComfyUI loads."""
    with safe_open(str(path), framework="pt") as f:
        return any(k.startswith(KOHYA_PREFIXES) for k in f.keys())


def checkpoint_step(path: Path) -> int:
    """Training step of a LoRA file: kohya's `ss_steps` metadata, else the last number in the file name."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if str(meta.get("ss_steps", "")).isdigit():
        return int(meta["ss_steps"])
    numbers = re.findall(r"\d+", path.stem)
    if not numbers:
        raise InputDataError(
            f"cannot tell the training step of {path}: no `ss_steps` metadata and no number in the name",
            fix="name checkpoints like `<name>-step000500.safetensors` or save them with kohya metadata",
        )
    return int(numbers[-1])


def find_checkpoints(workspace: Path, pattern: str) -> list[Checkpoint]:
    """Kohya-format LoRA files matching `pattern` (a glob under the workspace), ordered by training step."""
    files = sorted(p for p in workspace.glob(pattern) if p.is_file() and p.suffix == ".safetensors")
    kohya = [p for p in files if is_kohya_lora(p)]
    if not kohya:
        seen = f"found {len(files)} .safetensors, none in kohya format" if files else "nothing matched"
        raise InputDataError(
            f"no LoRA checkpoints for checkpoints_glob {pattern!r} under {workspace} ({seen})",
            fix="run 03_training first, or point checkpoints_glob at the kohya-format .safetensors files",
        )
    found = sorted((Checkpoint(p.stem, step, p) for p, step in ((p, checkpoint_step(p)) for p in kohya)),
                   key=lambda c: c.step)
    steps = [(c.step, bool(EMA_NAME.search(c.name))) for c in found]  # 03_training's EMA copy is a checkpoint of its own
    dupes = sorted({s for s, ema in steps if steps.count((s, ema)) > 1})
    if dupes:
        raise InputDataError(
            f"checkpoints_glob {pattern!r} matched several files for step(s) {dupes}",
            fix="narrow checkpoints_glob to one training run's folder",
        )
    return found


def read_dataset(workspace: Path) -> pd.DataFrame:
    """`dataset/metadata.jsonl` as a table with absolute `path`; errors if missing or without a holdout."""
    meta = workspace / "dataset" / "metadata.jsonl"
    rows = read_jsonl(meta)
    if not rows:
        raise InputDataError(f"{meta} is missing or empty", fix="run 01_dataset (and 02_captioning) first")
    table = pd.DataFrame(rows)
    table["path"] = [workspace / "dataset" / name for name in table["file_name"]]
    missing = [str(p) for p in table["path"] if not p.is_file()]
    if missing:
        raise InputDataError(f"{meta} lists {len(missing)} missing image(s), e.g. {missing[0]}", fix="rerun 01_dataset")
    for split in ("train", "validation"):
        if not (table["split"] == split).any():
            raise InputDataError(
                f"{meta} has no `{split}` images; identity is measured against held-out photos",
                fix="rerun 01_dataset with validation_ratio > 0 and enough distinct photos",
            )
    return table


def build_prompts(dataset: pd.DataFrame, holdout: int, context: list[str], trigger: str, class_word: str) -> pd.DataFrame:
    """Prompts: the first `holdout` validation captions plus the new-context prompts (`{character}` filled).

    `clip_text` drops the trigger word, a made-up token that means nothing to CLIP, for prompt fidelity.
    """
    captions = [t for t in dataset.loc[dataset["split"] == "validation", "text"].fillna("") if t.strip()][:holdout]
    character = f"{trigger} {class_word}"
    rows = [("holdout", c) for c in captions] + [("context", c.replace("{character}", character)) for c in context]
    if not rows:
        raise InputDataError(
            "no prompts: the validation captions are empty and context_prompts is empty",
            fix="run 02_captioning, or list context_prompts",
        )
    table = pd.DataFrame(rows, columns=["kind", "prompt"])
    table.insert(0, "prompt_id", [f"{k[0]}{i}" for i, k in enumerate(table["kind"])])
    table["clip_text"] = [without_word(p, trigger) for p in table["prompt"]]
    return table


def without_word(prompt: str, word: str) -> str:
    """`prompt` with every whole `word` removed and the commas and spaces it leaves behind tidied."""
    text = re.sub(rf"\b{re.escape(word)}\b", " ", prompt)
    parts = (" ".join(part.split()) for part in text.split(","))
    return ", ".join(part for part in parts if part)
