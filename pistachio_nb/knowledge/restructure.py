"""The restructuring itself, on texts in memory: archive stale files, merge copies into their canonical home,
replace stale sections and superseded terms, give the learnings a critical-rules head, cut the core to budget.

Every step is a pure function of {path: text} plus the audit's findings and appends what it did to `actions`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from .conflicts import parse_rule
from .inventory import ARCHIVE_DIR, KbFile, estimate_tokens
from .markdown import parse_markdown, words
from .staleness import term_pattern, topic_key

UNIQUE_BELOW = 0.5  # a copy's sentence is its own when its word overlap with every canonical sentence is below this
SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass
class Draft:
    """The knowledge base being restructured: texts by path, the always-loaded list, and a log of actions."""

    texts: dict[str, str]
    always: list[str]
    actions: list[dict[str, str]] = field(default_factory=list)
    renames: dict[str, str] = field(default_factory=dict)  # old path -> new path
    pointers: list[str] = field(default_factory=list)  # lines for the core file's "where things moved" section

    def log(self, file: str, action: str, detail: str) -> None:
        self.actions.append({"file": file, "action": action, "detail": detail})

    def drop_always(self, rel: str) -> None:
        if rel in self.always:
            self.always.remove(rel)

    def always_tokens(self) -> int:
        return sum(estimate_tokens(self.texts[r]) for r in self.always)


def archive_name(rel: str, date: str) -> str:
    """`archive/<date>_<path with / as _>`: retired pages sort by when they stopped changing."""
    return f"{ARCHIVE_DIR}/{date}_{rel.replace('/', '_')}"


def archive_files(draft: Draft, files: dict[str, KbFile], to_archive: list[str]) -> None:
    """Move each file whose text newer files cover into archive/ with its last-change date; unload it."""
    for rel in to_archive:
        new = archive_name(rel, files[rel].last_change.date().isoformat())
        draft.texts[new] = draft.texts.pop(rel)
        draft.renames[rel] = new
        draft.drop_always(rel)
        draft.log(rel, "archive", f"moved to {new}: newer files cover most of its text")


def merge_file(draft: Draft, src: str, dst: str) -> None:
    """Fold `src` into `dst`: sections on topics `dst` already covers are dropped (dst is newer), the rest appended."""
    have = {topic_key(s.title) for s in parse_markdown(draft.texts[dst]).sections if s.level}
    doc = parse_markdown(draft.texts.pop(src))
    kept = [s for s in doc.sections if s.level > 1 and topic_key(s.title) not in have and doc.body_lines(s)]
    extra = "".join("\n" + "\n".join(doc.lines[s.start - 1 : s.end]).rstrip() + "\n" for s in kept)
    if extra:
        draft.texts[dst] = draft.texts[dst].rstrip("\n") + "\n" + extra
    draft.drop_always(src)
    draft.log(src, "merge", f"into {dst}: {len(kept)} section(s) of its own kept, the rest covered there")


def unique_sentences(copy: str, canonical: str) -> list[str]:
    """Sentences of a copy that the canonical text does not already say (word-set overlap below UNIQUE_BELOW)."""
    home = [set(words(s)) for s in SENTENCE.split(canonical)]
    out = []
    for sentence in SENTENCE.split(copy.strip()):
        mine = set(words(sentence))
        if mine and all(len(mine & h) / len(mine | h) < UNIQUE_BELOW for h in home):
            out.append(sentence.strip())
    return out


@dataclass(frozen=True)
class LineEdit:
    """Replace lines start..end (1-based, inclusive) of a file by `new` lines."""

    start: int
    end: int
    new: tuple[str, ...]


def apply_edits(text: str, edits: list[LineEdit]) -> str:
    """Apply non-overlapping line edits (an edit overlapping an earlier one is dropped), bottom up."""
    lines, taken, accepted = text.splitlines(), set(), []
    for e in edits:
        span = set(range(e.start, e.end + 1))
        if not span & taken:
            taken |= span
            accepted.append(e)
    for e in sorted(accepted, key=lambda e: e.start, reverse=True):
        lines[e.start - 1 : e.end] = list(e.new)
    return "\n".join(lines) + "\n"


def stale_edits(stale_rows: list[dict], files: dict[str, KbFile]) -> dict[str, list[LineEdit]]:
    """A stale section (heading and text) becomes one line naming the newer file that covers it."""
    edits: dict[str, list[LineEdit]] = {}
    for row in stale_rows:
        start, end = map(int, row["lines"].split("-"))
        note = f"{row['section']}: see `{row['newer_file']}` (newer); the old text is in git history."
        lines = files[row["file"]].doc.lines
        blank = ("",) if end < len(lines) and not lines[end - 1].strip() else ()
        edits.setdefault(row["file"], []).append(LineEdit(start, end, (note, *blank)))
    return edits


def copy_edits(groups, live: set[str], files: dict[str, KbFile]) -> dict[str, list[LineEdit]]:
    """Each non-canonical copy of a near-duplicate paragraph becomes a pointer; its unique sentences join the home."""
    edits: dict[str, list[LineEdit]] = {}
    for g in groups:
        home = g.canonical
        if g.kind != "near-duplicate text" or home not in live:
            continue
        home_lines = files[home].doc.lines
        h_start, h_end = g.spans[home][-1]
        section = next(p.section for p in files[home].doc.paragraphs if p.start == h_start)
        home_text = "\n".join(home_lines[h_start - 1 : h_end])
        added = []
        for rel, spans in g.spans.items():
            if rel == home or rel not in live:
                continue
            for start, end in spans:
                copy = "\n".join(files[rel].doc.lines[start - 1 : end])
                added += unique_sentences(copy, home_text + " " + " ".join(added))
                edits.setdefault(rel, []).append(LineEdit(start, end, (f"See `{home}`, section '{section}'.",)))
        if added:
            edits.setdefault(home, []).append(LineEdit(h_end, h_end, (home_lines[h_end - 1], *added)))
    return edits


def replace_terms(draft: Draft, terms: dict[str, str]) -> None:
    """Superseded terms replaced by their successors in every live (not archived) file."""
    for rel, text in list(draft.texts.items()):
        if rel.startswith(f"{ARCHIVE_DIR}/"):
            continue
        new = text
        for term, successor in terms.items():
            new = term_pattern(term).sub(successor, new)
        if new != text:
            draft.texts[rel] = new
            draft.log(rel, "replace terms", ", ".join(f"{t} -> {s}" for t, s in terms.items() if term_pattern(t).search(text)))


def cut_section(text: str, title: str) -> tuple[str, list[str]]:
    """Remove the section titled `title` (with its subsections); return the new text and the section's body lines."""
    doc = parse_markdown(text)
    s = next(s for s in doc.sections if s.title == title)
    body = [doc.lines[n - 1] for n in doc.body_lines(s, subtree=True)]
    lines = list(doc.lines)
    del lines[s.start - 1 : s.tree_end]
    return "\n".join(lines).rstrip("\n") + "\n", body


def first_rule(text: str, rel: str) -> str:
    """The first imperative clause of a text, else its first sentence: the lesson in one line."""
    sentences = [s for s in SENTENCE.split(" ".join(text.split())) if s]
    for sentence in sentences:
        for clause in re.split(r"(?<=;)\s+", sentence):
            if parse_rule(rel, 0, clause):
                return sentence
    return sentences[0] if sentences else ""


def learnings_head(draft: Draft, learnings: str, rule_sections: list[str], limit: int) -> None:
    """Move rule lists (e.g. "Learned mistakes") from the always-loaded files into the learnings file, under a
    "Critical rules" head of at most `limit` one-line rules (the lesson of each dated entry included)."""
    moved = []
    for rel in [r for r in draft.always if r != learnings]:
        for s in parse_markdown(draft.texts[rel]).sections:
            if s.level and any(n.casefold() in s.title.casefold() for n in rule_sections):
                draft.texts[rel], body = cut_section(draft.texts[rel], s.title)
                moved += [re.sub(r"^\s*(?:[-*+]|\d+[.)])\s+", "", line).strip() for line in body]
                draft.log(rel, "move section", f"'{s.title}' ({len(body)} lines) to {learnings}, section 'Critical rules'")
                draft.pointers.append(f"- {s.title}: `{learnings}`, section 'Critical rules'.")
    doc = parse_markdown(draft.texts[learnings])
    lessons = [f"{first_rule(chr(10).join(doc.lines[n - 1] for n in doc.body_lines(s)), learnings)} ({s.title})"
               for s in doc.sections if s.level > 1 and doc.body_lines(s)]
    rules = [r for r in moved + lessons if r.strip() and not r.startswith("See `")]  # a pointer is no lesson
    head, rest = rules[:limit], rules[limit:]
    lines = list(doc.lines)
    title_end = next((s.end for s in doc.sections if s.level <= 1), 0)
    block = ["## Critical rules", "", *[f"- {r}" for r in head], ""]
    lines[title_end:title_end] = ([""] if title_end and lines[title_end - 1].strip() else []) + block
    text = "\n".join(lines).rstrip("\n") + "\n"
    if rest:
        text += "\n## More rules\n\n" + "\n".join(f"- {r}" for r in rest) + "\n"
    draft.texts[learnings] = text
    draft.log(learnings, "critical rules head", f"{len(head)} one-line rules on top ({len(moved)} moved in)"
              + (f"; {len(rest)} more under 'More rules'" if rest else ""))


def title_of(text: str, rel: str) -> str:
    """A page's first top-level heading, else its file name: how a pointer names it."""
    doc = parse_markdown(text)
    return next((s.title for s in doc.sections if s.level == 1), PurePosixPath(rel).stem)


def fit_budget(draft: Draft, core: str, keep: str | None, budget: int) -> None:
    """Stop loading always-loaded files (largest first) other than the core and the learnings until the
    estimated total fits `budget`; then the learnings; each leaves a pointer in the core."""
    for rel in sorted((r for r in draft.always if r not in (core, keep)), key=lambda r: -estimate_tokens(draft.texts[r])):
        if draft.always_tokens() + 40 <= budget:  # ~40 tokens: the pointer section added to the core
            return
        draft.drop_always(rel)
        draft.pointers.append(f"- {title_of(draft.texts[rel], rel)}: `{rel}` (read when the task needs it).")
        draft.log(rel, "load on demand", f"no longer always loaded ({estimate_tokens(draft.texts[rel])} tokens)")
    if keep and draft.always_tokens() + 40 > budget and keep in draft.always:
        draft.drop_always(keep)
        draft.pointers.append(f"- Learnings: `{keep}`; read its 'Critical rules' head at the start of a session.")
        draft.log(keep, "load on demand", "still over budget with only the core and the learnings loaded")


def add_pointers(draft: Draft, core: str) -> None:
    """The core file ends with where everything that left it now lives."""
    if draft.pointers:
        draft.texts[core] = (draft.texts[core].rstrip("\n") + "\n\n## Where things moved\n\nRead these when a task "
                             "needs them; they are not loaded up front.\n\n" + "\n".join(draft.pointers) + "\n")
        draft.log(core, "pointers", f"'Where things moved' lists {len(draft.pointers)} place(s)")
