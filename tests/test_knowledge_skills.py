"""skills/ is what `pistachio knowledge skills` generates from the notebooks and the CLI: in sync (headings
and verbs), short, one-line commands, a when-to-load line each, and within the budget when audited."""

from __future__ import annotations

import argparse
import shutil

import nbformat

from pistachio_nb.cli import build_parser
from pistachio_nb.knowledge import audit_knowledge
from pistachio_nb.knowledge.skills import (AREAS, INDEX, MAX_LINES, REGENERATE, NotebookProse, cli_verbs, render_skill,
                                           render_skills, skeleton, skills_table)
from pistachio_nb.paths import resolve
from tests.test_knowledge_audit import params

FIX = f"skills/ is out of date with the notebooks or the CLI: run `{REGENERATE}` to regenerate it and commit skills/"


def committed() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(resolve("skills").glob("*.md"))}


def test_committed_skills_match_the_notebook_headings_and_cli_verbs():
    fresh, mine = render_skills(), committed()
    assert set(fresh) == set(mine), FIX
    for name, text in fresh.items():
        assert skeleton(text) == skeleton(mine[name]), f"{name}: {FIX}"


def test_every_cli_verb_is_in_exactly_one_skill():
    pages = render_skills()
    for verb in cli_verbs():
        if verb.command.startswith("pistachio run "):
            continue
        homes = [name for name, text in pages.items() if f"- `{verb.command}`" in text]
        assert len(homes) == 1, (verb.command, homes)


def test_pages_are_short_one_line_and_say_when_to_load():
    pages = render_skills()
    assert set(pages) == {f"{a.slug}.md" for a in AREAS} | {INDEX}
    for name, text in pages.items():
        lines = text.splitlines()
        assert len(lines) <= MAX_LINES and "```" not in text and "\\\n" not in text, name
        if name != INDEX:
            assert lines[2].startswith("When to load: ") and name in pages[INDEX]
            assert f"- `pistachio run {AREAS[[f'{a.slug}.md' for a in AREAS].index(name)].notebooks[0]} " in text


def test_a_changed_heading_or_a_new_verb_breaks_the_sync(tmp_path):
    shutil.copytree(resolve("notebooks"), tmp_path / "notebooks")
    nb_path = tmp_path / "notebooks" / "05_inpainting.ipynb"
    nb = nbformat.read(nb_path, 4)
    cell = next(c for c in nb.cells if c.cell_type == "markdown" and "\n## " in "\n" + c.source and "Parameters" not in c.source)
    cell.source = cell.source.replace("## ", "## Renamed: ", 1)
    nbformat.write(nb, nb_path)
    assert skeleton(render_skills(tmp_path / "notebooks")["inpainting.md"]) != skeleton(committed()["inpainting.md"])
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub.add_parser("inpaint-all", help="inpaint every picture of a folder")
    pages = render_skills(parser=parser)
    assert "- `pistachio inpaint-all`" in pages["inpainting.md"]
    assert skeleton(pages["inpainting.md"]) != skeleton(committed()["inpainting.md"])


def test_skills_fit_the_budget_when_audited_like_any_knowledge_base(tmp_path):
    p = params(tmp_path, resolve("skills"), always_loaded=[INDEX], superseded_terms={})
    audit = audit_knowledge(p)
    assert audit.budget["within_budget"].all() and audit.templates.empty and audit.duplicates.empty
    table = skills_table(p.kb_root)
    assert table["one_line_commands"].all() and (table["lines"] <= MAX_LINES).all()
    assert (table.loc[table["skill"] != INDEX, "when_to_load"] != "").all()


def test_a_notebook_with_many_parameters_still_fits_one_page():
    many = NotebookProse("03_training", "03 · Training", "Run this after 02.", (("1 · Train", "It trains."),),
                         tuple((f"knob_{i}", "what it does") for i in range(150)))
    page = render_skill(AREAS[2], [many], [])
    assert len(page.splitlines()) <= MAX_LINES and "`knob_149`" in page
    few = NotebookProse("03_training", "03 · Training", "Run this after 02.", (), (("rank", "LoRA rank"),))
    assert "- `rank`: LoRA rank" in render_skill(AREAS[2], [few], [])
