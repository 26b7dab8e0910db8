"""Each knowledge-audit detector finds its planted problem and leaves a clean file alone (plain folders, no git)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from pistachio_nb.errors import InputDataError, ParamsError
from pistachio_nb.knowledge import duplication
from pistachio_nb.knowledge.growth import growth_table
from pistachio_nb.knowledge.inventory import estimate_tokens, inventory_table, load_kb
from pistachio_nb.knowledge.markdown import parse_markdown, words
from pistachio_nb.knowledge.staleness import stale_table, superseded_table
from pistachio_nb.knowledge.templates import template_table
from pistachio_testkit.demo_kb_text import CAPTIONING_MD, POD_CHECKLIST_MD, SILENT_CRASH

CLEAN = CAPTIONING_MD  # the demo's clean file: unique headings, no placeholders, no copies
PATTERNS = [r"\[FILL IN[^\]]*\]", r"\bTODO\b", r"\bTBD\b"]
DAY = 86400


def make_kb(root, files: dict[str, str], age_days: dict[str, int] | None = None, always: list[str] | None = None):
    """Write Markdown files (mtime set `age_days` back) and load them the way the audit does."""
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
        stamp = time.time() - DAY * (age_days or {}).get(rel, 0)
        os.utime(root / rel, (stamp, stamp))
    return load_kb(root, always or [])


def test_markdown_ignores_hash_lines_in_code_and_keeps_line_numbers():
    doc = parse_markdown("# Title\n\nText.\n\n```bash\n# a comment, not a heading\n\nls\n```\n## Next\n")
    assert [(s.title, s.start, s.end) for s in doc.sections] == [("Title", 1, 9), ("Next", 10, 10)]
    assert [(p.start, p.end) for p in doc.paragraphs] == [(3, 3), (5, 9)]
    assert doc.sections[0].tree_end == 10  # the level-1 section contains its subsection


def test_inventory_counts_tokens_and_marks_always_loaded(tmp_path):
    files = make_kb(tmp_path, {"CLAUDE.md": CLEAN, "kb/a.md": "# A\n\nshort\n"}, always=["CLAUDE.md"])
    inv = inventory_table(files).set_index("file")
    assert inv.loc["CLAUDE.md", "tokens"] == estimate_tokens(CLEAN) == -(-len(CLEAN) // 4)
    assert inv.loc["CLAUDE.md", "loading"] == "always" and inv.loc["kb/a.md", "loading"] == "on demand"
    assert inv.loc["kb/a.md", "change_source"] == "mtime"  # not a git folder


def test_missing_root_is_an_error_naming_kb_root(tmp_path):
    with pytest.raises(InputDataError, match="kb_root .*nowhere"):
        load_kb(tmp_path / "nowhere", [])


def test_growth_without_git_history_is_empty_not_an_error(tmp_path):
    make_kb(tmp_path, {"CLAUDE.md": "# Rules\n\n## Learned mistakes\n\n- one\n"})
    assert growth_table(tmp_path, ["Learned mistakes"]).empty


def test_always_loaded_glob_matching_nothing_is_an_error(tmp_path):
    make_kb(tmp_path, {"CLAUDE.md": CLEAN})
    with pytest.raises(ParamsError, match="always_loaded.*CLAUDE.MD"):
        load_kb(tmp_path, ["CLAUDE.MD"])


def test_templates_flag_placeholder_file_and_section_not_clean(tmp_path):
    partial = CLEAN + "\n## Later\n\nTODO: write this\n"
    files = make_kb(tmp_path, {"checklist.md": POD_CHECKLIST_MD, "clean.md": CLEAN, "partial.md": partial})
    found = template_table(files, PATTERNS, 0.5).set_index("file")
    assert found.loc["checklist.md", "scope"] == "whole file"
    assert found.loc["checklist.md", "placeholder_share"] == 1.0
    assert found.loc["partial.md", "scope"] == "section 'Later'"
    assert "clean.md" not in found.index


def test_minhash_estimates_jaccard_of_shingle_sets():
    rng = np.random.default_rng(1)
    vocab = [f"w{i}" for i in range(400)]
    base = list(rng.choice(vocab, 120))
    edited = base[:60] + list(rng.choice(vocab, 60))
    exact_a = set(duplication.shingle_hashes(" ".join(base)).tolist())
    exact_b = set(duplication.shingle_hashes(" ".join(edited)).tolist())
    exact = len(exact_a & exact_b) / len(exact_a | exact_b)
    a, b = duplication.minhash_params()
    sig_a = duplication.signature(duplication.shingle_hashes(" ".join(base)), a, b)
    sig_b = duplication.signature(duplication.shingle_hashes(" ".join(edited)), a, b)
    assert abs(np.mean(sig_a == sig_b) - exact) < 0.12


def test_duplicates_group_edited_copies_with_spans_and_skip_clean(tmp_path):
    copy = SILENT_CRASH.replace("simply stops", "just stops")
    kb = {"a.md": f"# A\n\n{SILENT_CRASH}\n", "b.md": f"# B\n\nIntro line.\n\n## Known issues\n\n{copy}\n",
          "clean.md": CLEAN}
    files = make_kb(tmp_path, kb, age_days={"a.md": 10})
    groups = duplication.find_duplicates(files, 0.5)
    assert [(g.kind, g.spans) for g in groups] == [("near-duplicate text", {"a.md": [(3, 3)], "b.md": [(7, 7)]})]
    assert groups[0].canonical == "b.md"  # the more recently changed copy
    table = duplication.duplicates_table(groups)
    assert table.loc[0, "spans"] == "a.md:3, b.md:7"


def test_duplicates_find_case_variant_names(tmp_path):
    files = make_kb(tmp_path, {"kb/Notes.md": "# Notes\n\nold\n", "kb/notes.md": "# Notes\n\nnew\n", "c.md": CLEAN})
    groups = duplication.case_groups(files)
    assert len(groups) == 1 and set(groups[0].spans) == {"kb/Notes.md", "kb/notes.md"}


def test_lsh_rows_keep_candidates_below_threshold():
    for threshold in (0.3, 0.5, 0.7, 0.9):
        rows = duplication.lsh_rows(threshold)
        assert (rows / duplication.NUM_PERM) ** (1 / rows) <= threshold


def test_stale_sections_need_a_newer_file_with_the_same_topic(tmp_path):
    old = "# Old manual\n\n## Restarting ComfyUI\n\nKill the process and start it again in tmux.\n"
    new = "# ComfyUI\n\n## ComfyUI restart\n\nUse supervisorctl restart comfyui.\n"
    files = make_kb(tmp_path, {"old.md": old, "new.md": new, "clean.md": CLEAN}, age_days={"old.md": 200})
    stale = stale_table(files, 90)
    assert list(stale["file"]) == ["old.md"] and list(stale["newer_file"]) == ["new.md"]
    assert list(stale["lines"]) == ["3-5"] and 199 <= stale.loc[0, "gap_days"] <= 200
    assert stale_table(files, 300).empty


def test_superseded_terms_report_file_and_line_not_longer_words(tmp_path):
    text = "# Models\n\nWe used sdxl-v1 at first.\n\nThen sdxl-v10 and SDXL-V1 again.\n"
    files = make_kb(tmp_path, {"models.md": text, "clean.md": CLEAN})
    found = superseded_table(files, {"sdxl-v1": "sdxl-v2"})
    assert list(zip(found["file"], found["line"])) == [("models.md", 3), ("models.md", 5)]
    assert "clean.md" not in set(found["file"])


def test_words_keep_ids_whole():
    assert words("Pod pod-7f3a9c runs `sd_xl_base_0.9`.") == ["pod", "pod-7f3a9c", "runs", "sd_xl_base_0.9"]
