"""Inventory of a Markdown knowledge base: size, estimated tokens, last change, loading; the context budget."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from fnmatch import fnmatch
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..errors import InputDataError, ParamsError
from . import gitlog
from .markdown import MarkdownDoc, parse_markdown, words

# No GPT/Claude tokenizer is available offline, so tokens are estimated as characters / 4, the usual
# rule of thumb for English prose with BPE tokenizers (code and tables tend to cost somewhat more).
CHARS_PER_TOKEN = 4
MARKDOWN_SUFFIXES = (".md", ".markdown")
ARCHIVE_DIR = "archive"  # retired pages (a proposal moves stale files here); kept for history, never audited


def estimate_tokens(text: str) -> int:
    """Estimated tokens: ceil(characters / 4)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class KbFile:
    rel: str  # path relative to the knowledge-base root, with forward slashes
    text: str
    doc: MarkdownDoc
    last_change: datetime
    change_source: str  # "git" (author date of the last commit touching it) or "mtime"
    always_loaded: bool

    @property
    def tokens(self) -> int:
        return estimate_tokens(self.text)

    @property
    def n_words(self) -> int:
        return len(words(self.text))


def find_markdown(root: Path) -> list[str]:
    """Markdown files below `root` (relative, sorted); hidden folders (.git, .venv) and the top-level archive/
    folder are not entered."""
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and not (folder == str(root) and d == ARCHIVE_DIR)]
        rel = Path(folder).relative_to(root)
        found += [(rel / n).as_posix() for n in names
                  if n.lower().endswith(MARKDOWN_SUFFIXES) and not n.startswith(".")]
    return sorted(found)


def is_always_loaded(rel: str, globs: list[str]) -> bool:
    """fnmatch-style globs relative to the root (`*` also crosses folders)."""
    return any(fnmatch(rel, g) for g in globs)


def check_inputs(root: Path, globs: list[str]) -> list[str]:
    """Fail before any work on a missing root, no Markdown, or an always-loaded glob that matches nothing."""
    if not root.is_dir():
        raise InputDataError(f"kb_root {root} is not a folder", fix="point kb_root at the folder of Markdown files")
    rels = find_markdown(root)
    if not rels:
        raise InputDataError(f"kb_root {root} holds no .md files", fix="point kb_root at the knowledge-base folder")
    unmatched = [g for g in globs if not any(fnmatch(r, g) for r in rels)]
    if unmatched:
        raise ParamsError(
            f"always_loaded: {unmatched} match no Markdown file under {root}",
            fix="globs are relative to kb_root, e.g. 'CLAUDE.md' or 'notes/*.md'; a typo here would hide cost",
        )
    return rels


def _last_changes(root: Path, rels: list[str]) -> dict[str, tuple[datetime, str]]:
    dates = {p: c.date for c in gitlog.history(root) for p in c.paths}  # oldest first: last write wins
    dirty = gitlog.uncommitted(root)
    out = {}
    for rel in rels:
        if rel in dates and rel not in dirty:
            out[rel] = (dates[rel], "git")
        else:
            out[rel] = (datetime.fromtimestamp((root / rel).stat().st_mtime, timezone.utc), "mtime")
    return out


def load_kb(root: Path, always_globs: list[str]) -> list[KbFile]:
    """Read and parse every Markdown file once (read only); last change from git when tracked and clean."""
    rels = check_inputs(root, always_globs)
    changes = _last_changes(root, rels)
    files = []
    for rel in rels:
        text = (root / rel).read_bytes().decode("utf-8", "replace")
        date, source = changes[rel]
        files.append(KbFile(rel, text, parse_markdown(text), date, source, is_always_loaded(rel, always_globs)))
    return files


def inventory_table(files: list[KbFile]) -> pd.DataFrame:
    """One row per file: lines, words, estimated tokens, last change and whether it is always loaded."""
    rows = [
        {"file": f.rel, "loading": "always" if f.always_loaded else "on demand", "lines": len(f.doc.lines),
         "words": f.n_words, "tokens": f.tokens, "last_change": f.last_change.date().isoformat(),
         "change_source": f.change_source}
        for f in files
    ]
    return pd.DataFrame(rows).sort_values(["loading", "tokens"], ascending=[True, False], ignore_index=True)


def budget_table(inventory: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Always-loaded files, largest first, with the running total against the budget."""
    spent = inventory[inventory["loading"] == "always"][["file", "lines", "tokens"]]
    spent = spent.sort_values("tokens", ascending=False, ignore_index=True)
    spent["cumulative_tokens"] = spent["tokens"].cumsum()
    spent["pct_of_budget"] = (100 * spent["cumulative_tokens"] / budget).round(1)
    spent["within_budget"] = spent["cumulative_tokens"] <= budget
    return spent


def budget_figure(inventory: pd.DataFrame, budget: int):
    """Top: the always-loaded spend stacked per file against the budget line. Bottom: every file's tokens."""
    always = budget_table(inventory, budget)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 2.2 + 0.3 * len(inventory)),
                                      gridspec_kw={"height_ratios": [1.2, max(2.0, 0.3 * len(inventory))]})
    shades = plt.cm.Reds(np.linspace(0.85, 0.35, max(1, len(always))))
    base = 0
    for row, shade in zip(always.itertuples(), shades):
        top.barh([0], [row.tokens], left=base, color=shade, edgecolor="white", label=row.file)
        base += row.tokens
    top.axvline(budget, color="black", linestyle="--", label=f"budget ({budget})")
    top.set_xlim(0, 1.05 * max(base, budget))
    top.set_yticks([])
    top.set_title(f"spent before the first task: {base} of {budget} estimated tokens ({100 * base / budget:.0f}%)")
    top.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    order = inventory.sort_values("tokens")
    colors = ["tab:red" if loading == "always" else "tab:gray" for loading in order["loading"]]
    bottom.barh(order["file"], order["tokens"], color=colors)
    bottom.set_xlabel("estimated tokens (characters / 4); red: always loaded, grey: on demand")
    bottom.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig
