"""Split Markdown into sections and paragraphs with 1-based line spans, ignoring `#` lines inside code fences."""

from __future__ import annotations

import re
from dataclasses import dataclass

FENCE = re.compile(r"^\s{0,3}(```|~~~)")
HEADING = re.compile(r"^\s{0,3}(#{1,6})(?:\s+(.*?))?\s*#*\s*$")
WORD = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")


@dataclass(frozen=True)
class Section:
    """A heading and its own lines up to the next heading (`end`), or up to the next heading of the
    same or a higher level (`tree_end`, i.e. including its subsections). Level 0 is text before any heading."""

    title: str
    level: int
    start: int
    end: int
    tree_end: int


@dataclass(frozen=True)
class Paragraph:
    """A run of non-blank, non-heading lines (a fenced code block counts as text) under one heading."""

    start: int
    end: int
    text: str
    section: str


@dataclass(frozen=True)
class MarkdownDoc:
    lines: tuple[str, ...]
    kinds: tuple[str, ...]  # per line: "heading", "blank", "text" or "code"
    sections: tuple[Section, ...]
    paragraphs: tuple[Paragraph, ...]

    def body_lines(self, section: Section, subtree: bool = False) -> list[int]:
        """1-based numbers of the non-blank, non-heading lines of a section (optionally with its subsections)."""
        last = section.tree_end if subtree else section.end
        return [n for n in range(section.start, last + 1) if self.kinds[n - 1] in ("text", "code")]


def words(text: str) -> list[str]:
    """Lower-case word tokens (keeps `v1.0`, `pod-7f3a`, `sd_xl` whole); Markdown punctuation is dropped."""
    return WORD.findall(text.lower())


def _line_kinds(lines: list[str]) -> list[str]:
    kinds, in_code = [], False
    for line in lines:
        if FENCE.match(line):
            in_code = not in_code
            kinds.append("code")
        elif in_code:
            kinds.append("code")
        elif HEADING.match(line):
            kinds.append("heading")
        else:
            kinds.append("text" if line.strip() else "blank")
    return kinds


def _sections(lines: list[str], kinds: list[str]) -> list[Section]:
    heads = [(n, HEADING.match(lines[n - 1])) for n, k in enumerate(kinds, 1) if k == "heading"]
    heads = [(n, len(m[1]), (m[2] or "").strip()) for n, m in heads]
    total = len(lines)
    out = []
    first = heads[0][0] if heads else total + 1
    if any(k != "blank" for k in kinds[: first - 1]):
        out.append(Section("", 0, 1, first - 1, first - 1))
    for i, (start, level, title) in enumerate(heads):
        end = heads[i + 1][0] - 1 if i + 1 < len(heads) else total
        later = [n for n, lv, _ in heads[i + 1 :] if lv <= level]
        out.append(Section(title, level, start, end, later[0] - 1 if later else total))
    return out


def _paragraphs(lines: list[str], kinds: list[str], sections: list[Section]) -> list[Paragraph]:
    out, start = [], None
    for n, kind in enumerate([*kinds, "blank"], 1):
        if kind in ("text", "code") and start is None:
            start = n
        elif kind in ("blank", "heading") and start is not None:
            title = next((s.title for s in reversed(sections) if s.start <= start), "")
            out.append(Paragraph(start, n - 1, "\n".join(lines[start - 1 : n - 1]), title))
            start = None
    return out


def parse_markdown(text: str) -> MarkdownDoc:
    """Parse once; every detector reads the same line numbers, so their file:line spans agree."""
    lines = text.splitlines()
    kinds = _line_kinds(lines)
    sections = _sections(lines, kinds)
    return MarkdownDoc(tuple(lines), tuple(kinds), tuple(sections), tuple(_paragraphs(lines, kinds, sections)))
