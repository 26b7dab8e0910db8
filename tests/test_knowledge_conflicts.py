"""The conflicting-rules finder: every planted conflict in the demo knowledge base and nothing else
(precision and recall 1 there), no pair at all on clean text (the captioning guide, the suite's prose)."""

from __future__ import annotations

from datetime import datetime, timezone

import nbformat
import pytest

from pistachio_nb.knowledge.conflicts import conflicts_table, parse_rule
from pistachio_nb.knowledge.inventory import KbFile, load_kb
from pistachio_nb.knowledge.markdown import parse_markdown
from pistachio_nb.paths import resolve
from pistachio_testkit.demo_kb import write_demo_kb
from pistachio_testkit.demo_kb_text import CAPTIONING_MD, PLANTED_CONFLICTS


def kb_file(rel: str, text: str) -> KbFile:
    return KbFile(rel, text, parse_markdown(text), datetime.now(timezone.utc), "mtime", False)


def line_of(files: dict[str, KbFile], rel: str, snippet: str) -> str:
    lines = [n for n, line in enumerate(files[rel].doc.lines, 1) if snippet in line]
    assert len(lines) == 1, (rel, snippet)
    return f"{rel}:{lines[0]}"


def test_demo_conflicts_are_found_with_precision_and_recall_one(tmp_path):
    files = load_kb(write_demo_kb(tmp_path / "kb"), [])
    by_rel = {f.rel: f for f in files}
    planted = {frozenset({line_of(by_rel, *a), line_of(by_rel, *b)}) for a, b in PLANTED_CONFLICTS}
    table = conflicts_table(files)
    found = {frozenset({a, b}) for a, b in zip(table["where_a"], table["where_b"])}
    assert found == planted  # precision: nothing else listed; recall: every planted pair listed
    assert set(table["kind"]) == {"opposite polarity", "incompatible frequency"}


def clean_texts() -> list[KbFile]:
    notebooks = sorted(resolve("notebooks").glob("*.ipynb"))
    prose = ["\n\n".join(c.source for c in nbformat.read(nb, 4).cells if c.cell_type == "markdown") for nb in notebooks]
    skills = [(p.name, p.read_text()) for p in sorted(resolve("skills").glob("*.md"))]
    return [kb_file("captioning.md", CAPTIONING_MD), *(kb_file(nb.name, t) for nb, t in zip(notebooks, prose)),
            *(kb_file(name, text) for name, text in skills)]


def test_clean_text_has_no_conflicts():
    files = clean_texts()
    assert len(files) > 10
    assert conflicts_table(files).empty


@pytest.mark.parametrize("clause, verb, negative, frequency", [
    ("Before training, always run the dependency drift check.", "run", False, "always"),
    ("Do not resize images in place", "resize", True, ""),
    ("Skip the dependency drift check when the pod is new", "", True, ""),
    ("Save a checkpoint only at the end of a run", "save", False, "restricted"),
])
def test_imperative_clauses_are_read_as_rules(clause, verb, negative, frequency):
    rule = parse_rule("a.md", 1, clause)
    assert (rule.verb, rule.negative, rule.frequency) == (verb, negative, frequency)


@pytest.mark.parametrize("clause", ["The queue simply stops moving.", "Captions of one sentence worked better.",
                                    "Stop it first."])
def test_statements_and_objectless_clauses_are_not_rules(clause):
    assert parse_rule("a.md", 1, clause) is None
