"""Disposition: one suggested action per file with its reasons, exported as Markdown; never applied."""

from __future__ import annotations

from collections import Counter

import pandas as pd

from .duplication import DuplicateGroup
from .inventory import KbFile

MOSTLY = 0.5  # share of a file (words or text lines) above which a finding decides the whole file's fate
BUDGET_HOG = 0.25  # an always-loaded file holding this share of the always-loaded total, when over budget


def _findings(f: KbFile, templates: pd.DataFrame, groups: list[DuplicateGroup], stale: pd.DataFrame,
              superseded: pd.DataFrame, always_total: int, budget: int) -> list[tuple[str, str, str]]:
    """(action, target, reason) for each finding about one file, strongest action first."""
    out = []
    mine = templates[templates["file"] == f.rel]
    for row in mine.itertuples():
        action = "skip until filled" if row.scope == "whole file" else "trim"
        out.append((action, "", f"{row.scope} is {row.placeholder_share:.0%} placeholders (lines {row.lines})"))
    for g in groups:
        if g.kind != "near-duplicate text" and f.rel in g.spans and g.canonical != f.rel:
            out.append(("merge into", g.canonical, f"same name as {g.canonical} (the newer) except for letter case"))
    copies = Counter()  # canonical home -> words of this file copied from text there
    for g in groups:
        if g.kind == "near-duplicate text" and f.rel in g.spans and g.canonical != f.rel:
            copies[g.canonical] += g.words_per_file[f.rel]
    if copies:
        home, _ = copies.most_common(1)[0]
        share = sum(copies.values()) / max(1, f.n_words)
        out.append(("merge into" if share >= MOSTLY else "trim", home,
                    f"{share:.0%} of its words are near-copies of text whose newest home is {', '.join(copies)}"))
    old = stale[stale["file"] == f.rel]
    if not old.empty:
        share = old["body_lines"].sum() / max(1, sum(len(f.doc.body_lines(s)) for s in f.doc.sections))
        newer = ", ".join(sorted(set(old["newer_file"])))
        sections = ", ".join(f"'{s}'" for s in old["section"])
        out.append(("archive" if share >= MOSTLY else "trim", "",
                    f"{share:.0%} of its text sits under headings ({sections}) that {newer} covers, changed "
                    f"{old['gap_days'].min()}+ days later"))
    mentions = superseded[superseded["file"] == f.rel]
    if not mentions.empty:
        where = ", ".join(f"{t} (line {n})" for t, n in zip(mentions["term"], mentions["line"]))
        out.append(("trim", "", f"mentions superseded terms: {where}"))
    if f.always_loaded and always_total > budget and f.tokens >= BUDGET_HOG * always_total:
        out.append(("trim", "", f"always loaded and {f.tokens / always_total:.0%} of the always-loaded "
                                f"{always_total} tokens (budget {budget}): trim it or load it on demand"))
    order = ["skip until filled", "merge into", "archive", "trim"]
    return sorted(out, key=lambda finding: order.index(finding[0]))


def disposition_table(files: list[KbFile], templates: pd.DataFrame, groups: list[DuplicateGroup],
                      stale: pd.DataFrame, superseded: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Per file: keep, trim, merge into X, archive, or skip until filled, with every reason behind it."""
    always_total = sum(f.tokens for f in files if f.always_loaded)
    rows = []
    for f in files:
        found = _findings(f, templates, groups, stale, superseded, always_total, budget)
        action, target = (found[0][0], found[0][1]) if found else ("keep", "")
        rows.append({"file": f.rel, "loading": "always" if f.always_loaded else "on demand", "tokens": f.tokens,
                     "action": f"{action} {target}" if action == "merge into" else action,
                     "reason": "; ".join(r for _, _, r in found) or "no findings"})
    return pd.DataFrame(rows, columns=["file", "loading", "tokens", "action", "reason"])


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (pipes escaped, missing values blank); no extra dependency."""
    def cell(value) -> str:
        return "" if pd.isna(value) else str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def report_markdown(root: str, summary: dict[str, object], disposition: pd.DataFrame,
                    details: dict[str, pd.DataFrame]) -> str:
    """The report a person reads before editing anything by hand: figures, the disposition, then the evidence."""
    facts = "\n".join(f"- {key}: {value}" for key, value in summary.items())
    evidence = "".join(f"\n## {title}\n\n{markdown_table(df) if len(df) else 'None found.'}\n"
                       for title, df in details.items())
    return (
        f"# Knowledge audit of `{root}`\n\n"
        "Suggestions only: this audit read the folder and changed nothing in it. Tokens are estimated as\n"
        "characters / 4 (no GPT/Claude tokenizer is available offline).\n\n"
        f"{facts}\n\n![context budget](budget.png)\n\n## Disposition\n\n{markdown_table(disposition)}{evidence}"
    )
