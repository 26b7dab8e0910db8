"""Blank templates: files or sections that are mostly placeholders (`[FILL IN]`, `TODO`, empty headings)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd

from .inventory import KbFile
from .markdown import MarkdownDoc, Section


def placeholder_count(doc: MarkdownDoc, section: Section | None, patterns: Sequence[re.Pattern]) -> tuple[int, int]:
    """(placeholder lines, counted lines) of a leaf section or the whole file.

    Counted: non-blank, non-heading lines plus empty headings (no text and no subsections), which
    count as placeholders too. A heading that has content is structure, not waste, so it is not counted.
    """
    sections = [section] if section else doc.sections
    placeholders = counted = 0
    for s in sections:
        body = doc.body_lines(s)
        counted += len(body)
        placeholders += sum(1 for n in body if any(p.search(doc.lines[n - 1]) for p in patterns))
        if s.level and not body and s.tree_end == s.end:
            counted += 1
            placeholders += 1
    return placeholders, counted


def _row(f: KbFile, scope: str, span: str, placeholders: int, counted: int) -> dict:
    return {"file": f.rel, "scope": scope, "lines": span, "placeholder_lines": placeholders,
            "counted_lines": counted, "placeholder_share": round(placeholders / counted, 2),
            "loading": "always" if f.always_loaded else "on demand", "file_tokens": f.tokens}


def template_table(files: list[KbFile], patterns: Sequence[str], min_share: float) -> pd.DataFrame:
    """Whole files whose placeholder share reaches `min_share`, else their sections that do."""
    compiled = [re.compile(p) for p in patterns]
    rows = []
    for f in files:
        placeholders, counted = placeholder_count(f.doc, None, compiled)
        if counted and placeholders / counted >= min_share:
            rows.append(_row(f, "whole file", f"1-{len(f.doc.lines)}", placeholders, counted))
            continue
        for s in f.doc.sections:
            placeholders, counted = placeholder_count(f.doc, s, compiled)
            if placeholders and placeholders / counted >= min_share:
                rows.append(_row(f, f"section '{s.title}'", f"{s.start}-{s.end}", placeholders, counted))
    columns = ["file", "scope", "lines", "placeholder_lines", "counted_lines", "placeholder_share", "loading",
               "file_tokens"]
    return pd.DataFrame(rows, columns=columns)
