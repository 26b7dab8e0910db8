"""Staleness: sections whose topic a later-changed file also covers, and mentions of superseded terms."""

from __future__ import annotations

import re
from collections import defaultdict

import pandas as pd

from .inventory import KbFile
from .markdown import words

# Words that say nothing about a topic; a heading made only of these ("Notes", "Overview") links nothing.
FILLER_WORDS = {
    "a", "an", "and", "the", "of", "for", "to", "in", "on", "with", "how", "what", "when", "why", "is", "are",
    "notes", "note", "overview", "summary", "introduction", "intro", "misc", "todo", "contents", "table",
    "links", "references", "see", "also", "background", "general", "other", "more", "details",
}


def stem(word: str) -> str:
    for suffix in ("ing", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def topic_key(title: str) -> frozenset[str]:
    """A heading's topic: its content words, crudely stemmed, order-free ("Restarting ComfyUI" == "ComfyUI restart")."""
    return frozenset(stem(w) for w in words(title) if w not in FILLER_WORDS)


def stale_table(files: list[KbFile], stale_days: int) -> pd.DataFrame:
    """Sections (with text) whose topic heading also appears in a file changed at least `stale_days` later."""
    by_topic = defaultdict(list)
    for f in files:
        for s in f.doc.sections:
            if topic_key(s.title):
                by_topic[topic_key(s.title)].append(f)
    rows = []
    for f in files:
        for s in f.doc.sections:
            body = f.doc.body_lines(s)
            newer = [g for g in by_topic.get(topic_key(s.title), []) if g.rel != f.rel]
            newest = max(newer, key=lambda g: g.last_change, default=None)
            if not body or newest is None:
                continue
            gap = (newest.last_change - f.last_change).days
            if gap >= stale_days:
                rows.append({"file": f.rel, "section": s.title, "lines": f"{s.start}-{s.end}", "body_lines": len(body),
                             "last_change": f.last_change.date().isoformat(), "newer_file": newest.rel,
                             "newer_change": newest.last_change.date().isoformat(), "gap_days": gap})
    columns = ["file", "section", "lines", "body_lines", "last_change", "newer_file", "newer_change", "gap_days"]
    return pd.DataFrame(rows, columns=columns)


def term_pattern(term: str) -> re.Pattern:
    """Case-insensitive match of a term that is not part of a longer word (`v1` does not match `v10`)."""
    return re.compile(rf"(?<![\w.-]){re.escape(term)}(?![\w-]|\.\w)", re.IGNORECASE)


def superseded_table(files: list[KbFile], terms: dict[str, str]) -> pd.DataFrame:
    """Every line that mentions a superseded term (code blocks included: old ids hide in commands)."""
    patterns = {term: term_pattern(term) for term in terms}
    rows = [
        {"file": f.rel, "line": n, "term": term, "replaced_by": terms[term], "text": line.strip()[:120]}
        for f in files
        for n, line in enumerate(f.doc.lines, 1)
        for term, pattern in patterns.items()
        if pattern.search(line)
    ]
    return pd.DataFrame(rows, columns=["file", "line", "term", "replaced_by", "text"])
