"""Caption lint: one row per caption with the problems that quietly ruin a character LoRA.

Checks: trigger present and first; CLIP token count against the tokenizer's window (SDXL: 77 with
start/end tokens, so 75 for text; the rest is cut off in training unless the trainer chunks);
empty or duplicate captions; stripped phrases that are still there (e.g. in hand-written captions).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import pandas as pd

from ..errors import ModelLoadError
from ..models import resolve_model
from .postprocess import phrase_pattern

COLUMNS = ["file_name", "split", "tokens", "window", "trigger_first", "problems", "text"]


def load_clip_tokenizer(ref: str) -> Any:
    """The CLIP tokenizer in the `tokenizer` subfolder of an SDXL model (hub id, local folder or tiny:sdxl)."""
    from transformers import CLIPTokenizer

    path = resolve_model(ref)
    try:
        tokenizer = CLIPTokenizer.from_pretrained(path, subfolder="tokenizer")
        problem = "" if len(tokenizer) > 256 else f"a vocabulary of {len(tokenizer)} tokens (files missing)"
    except Exception as err:  # noqa: BLE001 - any library failure becomes one clear error
        problem = f"{type(err).__name__}: {err}"
    if problem:  # transformers builds an empty tokenizer from a folder without vocab files: refuse it
        raise ModelLoadError(
            f"base_model {ref!r}: no usable CLIP tokenizer in its `tokenizer` subfolder ({problem})",
            fix="point base_model at the SDXL base model you train on (hub id or local folder), or tiny:sdxl",
        )
    return tokenizer


def token_count(tokenizer: Any, text: str) -> int:
    """Tokens the text encoder sees for `text`, including the start and end tokens (no truncation)."""
    return len(tokenizer(text, truncation=False).input_ids)


def trigger_pieces(tokenizer: Any, trigger: str) -> list[str]:
    """The CLIP tokens the trigger becomes: a rare word splits into a few pieces with little prior meaning."""
    return tokenizer.tokenize(trigger)


def leads_with(text: str, trigger: str) -> bool:
    """True when `text` starts with the whole word `trigger` (so 'ohwx' does not match 'ohwxy, ...')."""
    return re.match(re.escape(trigger) + r"(?!\w)", text) is not None


def caption_problems(text: str, trigger: str, tokens: int, window: int, duplicate: bool, stripped: Iterable[str]) -> list[str]:
    """The lint findings for one caption, as short human-readable strings."""
    problems = []
    body = text.strip()
    if not body or body == trigger:
        problems.append("empty")
    if not phrase_pattern(trigger).search(body):
        problems.append("trigger missing")
    elif not leads_with(body, trigger):
        problems.append("trigger not first")
    if tokens > window:
        problems.append(f"truncated: {tokens} tokens > {window}")
    if duplicate and body:
        problems.append("duplicate caption")
    problems += [f"stripped phrase present: {s!r}" for s in stripped if phrase_pattern(s).search(body)]
    return problems


def lint_captions(rows: list[dict], trigger: str, tokenizer: Any, strip: Iterable[str] = ()) -> pd.DataFrame:
    """The lint table for metadata rows (`file_name`, `split`, `text`); `problems` is empty when all is well."""
    window = int(tokenizer.model_max_length)
    texts = [str(r.get("text") or "").strip() for r in rows]
    seen = Counter(t.lower() for t in texts)
    strip = list(strip)
    out = []
    for row, text in zip(rows, texts):
        tokens = token_count(tokenizer, text)
        problems = caption_problems(text, trigger, tokens, window, seen[text.lower()] > 1, strip)
        out.append({
            "file_name": row["file_name"], "split": row.get("split", ""), "tokens": tokens, "window": window,
            "trigger_first": leads_with(text, trigger),
            "problems": "; ".join(problems), "text": text,
        })  # fmt: skip
    return pd.DataFrame(out, columns=COLUMNS)


def lint_summary(table: pd.DataFrame) -> pd.DataFrame:
    """How many captions have each kind of problem (the first thing to read after a run)."""
    kinds = table["problems"].str.split("; ").explode()
    kinds = kinds[kinds.astype(bool)].str.replace(r":.*", "", regex=True)
    counts = kinds.value_counts().rename_axis("problem").reset_index(name="captions")
    ok = pd.DataFrame([{"problem": "(none)", "captions": int((table["problems"] == "").sum())}])
    return pd.concat([ok, counts], ignore_index=True)
