"""audit_knowledge on the generated demo knowledge base: every planted problem found, the clean file kept,
the audited folder untouched, the git history reproducible and bad inputs refused."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pandas as pd
import pytest

from pistachio_nb.errors import InputDataError, ParamsError
from pistachio_nb.knowledge import audit_knowledge
from pistachio_nb.knowledge.inventory import load_kb
from pistachio_nb.knowledge import KnowledgeAuditParams
from pistachio_nb.knowledge.proposal import propose_knowledge
from pistachio_testkit.demo_kb import write_demo_kb
from pistachio_testkit.demo_kb_text import COMMITS, MISTAKES, PLANTED_CONFLICTS

CLEAN = "kb/captioning.md"


def params(tmp, kb_root, **overrides) -> KnowledgeAuditParams:
    values = dict(
        workspace=tmp / "ws", kb_root=kb_root,
        always_loaded=["CLAUDE.md", "LEARNINGS.md", "PROGRESS.md", "kb/pod_checklist.md"], context_budget=1000,
        placeholder_patterns=[r"\[FILL IN[^\]]*\]", r"\bTODO\b", r"\bTBD\b"], blank_share=0.5,
        duplicate_threshold=0.5, stale_days=60, superseded_terms={"pod-7f3a9c": "pod-b21e04"},
        growth_sections=["Learned mistakes"], learnings_file="LEARNINGS.md", critical_rules=30, skills_dir="skills",
    )
    return KnowledgeAuditParams(**{**values, **overrides})


def snapshot(folder) -> dict[str, tuple[str, int]]:
    """sha256 and mtime (ns) of every file below `folder`, .git included."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("knowledge")
    p = params(tmp, tmp / "kb")
    write_demo_kb(p.kb_root)
    (p.kb_root / "CLAUDE.md").touch()  # stat-dirty but unchanged: a plain `git status` would rewrite .git/index
    before = snapshot(p.kb_root)
    audit = audit_knowledge(p)
    return p, audit, before


def test_audit_changes_nothing_in_the_audited_folder(demo):
    p, _, before = demo
    assert snapshot(p.kb_root) == before
    assert write_demo_kb(p.kb_root) == p.kb_root  # a current demo KB is reused, not rewritten
    assert snapshot(p.kb_root) == before


def test_budget_counts_only_always_loaded_files(demo):
    p, audit, _ = demo
    assert set(audit.budget["file"]) == set(p.always_loaded)
    always = audit.inventory[audit.inventory["loading"] == "always"]["tokens"].sum()
    assert audit.budget["cumulative_tokens"].iloc[-1] == always > p.context_budget
    assert not audit.budget["within_budget"].iloc[-1]


def test_last_change_comes_from_git_author_dates(demo):
    _, audit, _ = demo
    inv = audit.inventory.set_index("file")
    assert set(inv["change_source"]) == {"git"}
    assert inv.loc[CLEAN, "last_change"] == COMMITS[-1][0][:10]
    assert inv.loc["kb/pod_checklist.md", "last_change"] == COMMITS[0][0][:10]


def test_uncommitted_edit_falls_back_to_mtime(tmp_path):
    root = write_demo_kb(tmp_path / "kb")
    with (root / "PROGRESS.md").open("a") as fh:
        fh.write("\n## Week 21\n\nAn edit not yet committed.\n")
    files = {f.rel: f for f in load_kb(root, [])}
    assert files["PROGRESS.md"].change_source == "mtime" and files[CLEAN].change_source == "git"
    assert files["PROGRESS.md"].last_change > files[CLEAN].last_change


def test_every_planted_problem_is_found_and_the_clean_file_is_not(demo):
    _, audit, _ = demo
    assert set(audit.templates["file"]) == {"kb/pod_checklist.md", "docs/operations_manual.md"}
    kinds = set(audit.duplicates["kind"])
    assert kinds == {"same name, different case", "near-duplicate text"}
    spans = " ".join(audit.duplicates["spans"])
    assert "CLAUDE.md:" in spans and "LEARNINGS.md:" in spans and "PROGRESS.md:" in spans
    assert {"docs/pod_notes_2024.md", "kb/ComfyUI.md", "docs/operations_manual.md"} <= set(audit.stale["file"])
    assert set(audit.superseded["file"]) == {"CLAUDE.md", "docs/pod_notes_2024.md"}
    for table in (audit.templates, audit.stale, audit.superseded):
        assert CLEAN not in set(table["file"])
    assert CLEAN not in spans


def test_rule_growth_follows_the_history(demo):
    _, audit, _ = demo
    counts = list(audit.growth["lines"])
    assert len(counts) == len(COMMITS) and counts == sorted(counts) and counts[-1] == len(MISTAKES)
    assert set(audit.growth["file"]) == {"CLAUDE.md"}


def test_disposition_suggests_actions_and_exports_markdown(demo):
    _, audit, _ = demo
    action = audit.disposition.set_index("file")["action"]
    assert action["kb/pod_checklist.md"] == "skip until filled"
    assert action["kb/ComfyUI.md"] == "merge into kb/comfyui.md"
    assert action["docs/pod_notes_2024.md"] == "archive"
    assert action["docs/operations_manual.md"] == "trim"
    assert action[CLEAN] == "keep"
    report = audit.report_path.read_text()
    assert all(f"| {rel} |" in report for rel in audit.disposition["file"])
    assert "## Duplicates" in report and "LEARNINGS.md:" in report.split("## Duplicates")[1]
    written = {p.name for p in audit.out_dir.iterdir()}
    assert {"budget.png", "growth.png", "disposition.csv", "duplicates.csv", "report.md.params.json"} <= written


def check_demo_outputs(ws, rendered: str) -> None:
    """The 07_knowledge_audit check for tests/test_notebooks.py CHECKS: planted problems found, clean file kept."""
    out = ws / "knowledge_audit"
    action = pd.read_csv(out / "disposition.csv").set_index("file")["action"]
    assert action["kb/pod_checklist.md"] == "skip until filled" and action[CLEAN] == "keep"
    assert action["kb/ComfyUI.md"] == "merge into kb/comfyui.md" and action["docs/pod_notes_2024.md"] == "archive"
    assert "LEARNINGS.md:" in " ".join(pd.read_csv(out / "duplicates.csv")["spans"])
    assert len(pd.read_csv(out / "growth.csv")) == len(COMMITS)
    assert (out / "budget.png").stat().st_size > 10_000 and "## Disposition" in (out / "report.md").read_text()
    assert rendered.count('"image/png"') >= 2 and "Traceback" not in rendered  # budget and growth charts shown
    proposal = pd.read_csv(ws / "knowledge_proposal" / "before_after.csv").set_index("figure")
    assert int(proposal.loc["always-loaded tokens", "after"]) <= int(proposal.loc["always-loaded tokens", "budget"])
    assert int(proposal.loc["duplicate groups", "after"]) == 0
    assert len(pd.read_csv(out / "conflicts.csv")) == len(PLANTED_CONFLICTS)
    assert '"name": "stderr"' not in rendered and "dtype: object" not in rendered
    assert "](budget.png)" not in rendered  # the report's chart is embedded, not a broken relative link


def test_demo_output_check_accepts_the_audit_and_rejects_a_wrong_disposition(demo, tmp_path):
    p, audit, _ = demo
    rendered = '"image/png" "image/png"'
    propose_knowledge(audit, p)
    check_demo_outputs(p.workspace, rendered)
    shutil.copytree(audit.out_dir, tmp_path / "knowledge_audit")
    shutil.copytree(p.workspace / "knowledge_proposal", tmp_path / "knowledge_proposal")
    csv = tmp_path / "knowledge_audit" / "disposition.csv"
    csv.write_text(csv.read_text().replace("skip until filled", "keep"))
    with pytest.raises(AssertionError):
        check_demo_outputs(tmp_path, rendered)


def test_demo_history_is_reproducible(tmp_path, demo):
    p, _, _ = demo
    again = write_demo_kb(tmp_path / "again")

    def head(folder):
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, check=True).stdout

    assert head(again) == head(p.kb_root)


def test_demo_refuses_a_folder_that_is_not_a_demo(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.md").write_text("# Mine\n")
    with pytest.raises(InputDataError, match="not a generated demo"):
        write_demo_kb(tmp_path / "notes")
    assert (tmp_path / "notes" / "mine.md").read_text() == "# Mine\n"


def test_output_inside_the_audited_folder_is_refused(tmp_path):
    with pytest.raises(ParamsError, match="inside kb_root"):
        audit_knowledge(params(tmp_path, tmp_path, workspace=tmp_path / "ws"))


def test_bad_placeholder_regex_names_the_field(tmp_path):
    with pytest.raises(ParamsError, match="placeholder_patterns"):
        KnowledgeAuditParams.validate_values(params(tmp_path, tmp_path).model_dump() | {"placeholder_patterns": ["[x"]})
