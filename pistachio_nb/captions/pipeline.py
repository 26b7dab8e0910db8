"""`caption_dataset`: caption every dataset image that needs it, write sidecars + metadata.jsonl, lint the result.

Beside the verb, the stage's public helpers the notebook calls, each taking the params: a look at the
dataset and the trigger's tokens before captioning, then review, bulk find/replace and lint after it.
"""

from __future__ import annotations

import gc
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..errors import ModelLoadError
from ..files import write_csv, write_sidecar
from .captioners import Captioner, TemplateCaptioner, load_model_captioner
from .lint import lint_captions, lint_summary, load_clip_tokenizer, trigger_pieces
from .params import CaptioningParams
from .postprocess import postprocess
from .review import find_replace, review_grid, sample_grid
from .store import CaptionStore, current_caption, load_rows, sync_existing

TABLE = "captions.csv"
LINT = "caption_lint.csv"
FALLBACK_KEY = "fallback"  # caption_key of template captions written because the model failed to load


@dataclass
class CaptionResult:
    """What a run did: per-image table (status, source, backup), lint table, the captioner used and timings."""

    root: Path
    table: pd.DataFrame
    lint: pd.DataFrame
    captioner: str
    fallback_reason: str
    seconds: float

    @property
    def counts(self) -> pd.DataFrame:
        """Images per status (captioned, up to date, kept) and caption source."""
        return self.table.groupby(["status", "source"]).size().rename("images").reset_index()

    @property
    def lint_summary(self) -> pd.DataFrame:
        """How many captions have each kind of problem; `(none)` counts the clean ones."""
        return lint_summary(self.lint)

    def sample_grid(self, count: int):
        """The first `count` images, each with the whole caption this run left it."""
        return sample_grid(self.root, self.table.to_dict("records"), count)


def caption_key(p: CaptioningParams) -> str:
    """Fingerprint of everything that shapes a caption; a rerun with the same key skips images already done."""
    fields = ["trigger", "class_word", "captioner", "caption_model", "task_prompt", "max_caption_length", "num_beams",
              "template", "strip_phrases", "replacements"]  # fmt: skip
    blob = json.dumps(p.model_dump(mode="json", include=set(fields)), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def plan(root: Path, rows: list[dict], p: CaptioningParams, key: str) -> dict[str, str]:
    """file_name -> status: `todo` (no caption, or replaced on purpose), `up to date` or `kept`."""
    out = {}
    for row in rows:
        has = bool(current_caption(root, row))
        done = row.get("caption_key") == key
        placeholder = row.get("caption_key") == FALLBACK_KEY and p.captioner != "template"
        if not has or placeholder or (p.overwrite and not done):
            out[row["file_name"]] = "todo"
        else:
            out[row["file_name"]] = "up to date" if done else "kept"
    return out


def make_captioner(p: CaptioningParams, device: str | None = None) -> tuple[Captioner, str]:
    """The captioner `p` asks for, or the template with the load error as reason when `fallback: template`."""
    template = TemplateCaptioner(p.template, p.class_word)
    if p.captioner == "template":
        return template, ""
    try:
        return load_model_captioner(p.captioner, p.caption_model, p.task_prompt, p.max_caption_length, p.num_beams, device), ""
    except ModelLoadError as err:
        if p.fallback != "template":
            raise ModelLoadError(
                str(err).split("\n  fix:")[0],
                fix=f"{err.fix}; or set fallback: template to write template captions instead (generic, flagged in the table)",
            ) from err
        reason = str(err).split("\n")[0]
        template.name = f"template FALLBACK ({p.captioner} failed to load)"
        return template, reason


def caption_dataset(p: CaptioningParams, device: str | None = None) -> CaptionResult:
    """Caption the workspace dataset per `p`: trigger first, safe writes, resumable; returns tables to show."""
    t0 = time.perf_counter()
    root = p.ws.dataset
    rows = load_rows(root)
    tokenizer = load_clip_tokenizer(p.base_model)  # fail on a bad reference before the slow part
    sync_existing(root, rows)
    key = caption_key(p)
    status = plan(root, rows, p, key)
    todo = [n for n, s in status.items() if s == "todo"]
    captioner, reason = make_captioner(p, device) if todo else (None, "")
    name = captioner.name if captioner else "(nothing to caption)"
    store, backups = CaptionStore(root, rows), set()
    for start in tqdm(range(0, len(todo), p.batch_size), desc="captioning", unit="batch", disable=not todo):
        names = todo[start : start + p.batch_size]
        images = [_rgb(root / n) for n in names]
        raw = captioner.caption(images)
        texts = {n: postprocess(t, p.trigger, p.strip_phrases, p.replacements) for n, t in zip(names, raw)}
        backups |= set(store.save(texts, name, FALLBACK_KEY if reason else key))
        status.update(dict.fromkeys(names, "captioned"))
    del captioner
    free_gpu_memory()
    table = pd.DataFrame([{
        "file_name": r["file_name"], "split": r.get("split", ""), "status": status[r["file_name"]],
        "source": r.get("caption_source", "dataset"),
        "backup": str(store.backup_path(r["file_name"])) if r["file_name"] in backups else "", "text": r["text"],
    } for r in rows])  # fmt: skip
    lint = lint_captions(rows, p.trigger, tokenizer, p.strip_phrases)
    for file, frame in ((TABLE, table), (LINT, lint)):
        write_csv(root / file, frame)
        write_sidecar(root / file, p, captioner=name, fallback_reason=reason)
    return CaptionResult(root, table, lint, name, reason, round(time.perf_counter() - t0, 2))


def lint_dataset(p: CaptioningParams) -> pd.DataFrame:
    """Lint the captions as they are on disk now (hand-edited sidecars synced into metadata first); rewrites caption_lint.csv."""
    root = p.ws.dataset
    rows = load_rows(root)
    sync_existing(root, rows)
    lint = lint_captions(rows, p.trigger, load_clip_tokenizer(p.base_model), p.strip_phrases)
    write_csv(root / LINT, lint)
    write_sidecar(root / LINT, p)
    return lint


def dataset_table(p: CaptioningParams) -> pd.DataFrame:
    """The dataset as 01_dataset left it (or as the last edit did): file, split, size and current caption."""
    return pd.DataFrame(load_rows(p.ws.dataset))[["file_name", "split", "width", "height", "text"]]


def trigger_tokens(p: CaptioningParams) -> list[str]:
    """The pieces `base_model`'s CLIP tokenizer splits the trigger into (two or three rare ones is good)."""
    return trigger_pieces(load_clip_tokenizer(p.base_model), p.trigger)


def review_captions(p: CaptioningParams, page_size: int = 12):
    """An ipywidgets pager: each image with its caption in an editable box and a Save button (with backup)."""
    return review_grid(p.ws.dataset, page_size)


def bulk_replace(p: CaptioningParams) -> pd.DataFrame:
    """`find_text` -> `replace_text` in every caption, whole words, any case: a preview, written only with `apply_find_replace`."""
    return find_replace(p.ws.dataset, p.find_text, p.replace_text, apply=p.apply_find_replace)


def free_gpu_memory() -> None:
    """Return the captioner's cached VRAM to the driver, so training in another kernel can use it."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")
