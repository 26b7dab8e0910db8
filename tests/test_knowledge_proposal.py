"""propose_knowledge on the demo knowledge base: planted problems fixed in a copy, the clean file and the
audited folder untouched; apply_proposal commits it on a new branch of a clone, refuses a dirty or moved repo."""

from __future__ import annotations

import subprocess

import pytest

from pistachio_nb.cli import main
from pistachio_nb.knowledge import audit_knowledge
from pistachio_nb.knowledge.apply import ApplyRefusedError, apply_proposal, try_on_copy
from pistachio_nb.knowledge.proposal import propose_knowledge
from pistachio_testkit.demo_kb import write_demo_kb
from tests.test_knowledge_audit import CLEAN, params, snapshot


@pytest.fixture(scope="module")
def proposed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("proposal")
    p = params(tmp, tmp / "kb")
    write_demo_kb(p.kb_root)
    before = snapshot(p.kb_root)
    audit = audit_knowledge(p)
    return p, audit, propose_knowledge(audit, p), before


def git(folder, *args) -> str:
    return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, check=True).stdout.strip()


def test_before_after_shows_every_planted_problem_fixed(proposed):
    p, _, proposal, _ = proposed
    table = proposal.before_after.set_index("figure")
    assert table.loc["always-loaded tokens", "before"] > p.context_budget >= table.loc["always-loaded tokens", "after"]
    for figure in ("duplicate groups", "always-loaded blank templates", "stale sections", "superseded-term mentions"):
        assert table.loc[figure, "before"] > 0 and table.loc[figure, "after"] == 0, figure
    assert proposal.manifest["always_loaded_after"] == ["CLAUDE.md", "LEARNINGS.md"]


def test_clean_file_and_audited_folder_are_untouched(proposed):
    p, _, proposal, before = proposed
    assert snapshot(p.kb_root) == before
    assert (proposal.files_dir / CLEAN).read_bytes() == (p.kb_root / CLEAN).read_bytes()
    touched = set(proposal.manifest["writes"]) | set(proposal.manifest["deletes"]) | set(proposal.manifest["renames"])
    assert CLEAN not in touched and CLEAN not in proposal.diff and CLEAN not in set(proposal.actions["file"])
    change = proposal.files.set_index("file")["change"]
    assert change[CLEAN] == "unchanged" and change["docs/pod_notes_2024.md"] == "archived"
    assert change["kb/ComfyUI.md"] == "merged away" and change["CLAUDE.md"] == "edited"


def test_restructured_files_say_where_things_went(proposed):
    _, _, proposal, _ = proposed
    files = proposal.files_dir
    assert proposal.manifest["renames"] == {"docs/pod_notes_2024.md": "archive/2025-01-10_docs_pod_notes_2024.md"}
    assert not (files / "kb/ComfyUI.md").exists() and proposal.manifest["deletes"] == ["kb/ComfyUI.md"]
    learnings = (files / "LEARNINGS.md").read_text().split("## Critical rules\n\n")[1].split("\n\n")[0].splitlines()
    assert 17 < len(learnings) <= 30 and all(line.startswith("- ") for line in learnings)
    core = (files / "CLAUDE.md").read_text()
    assert "## Learned mistakes" not in core and "`PROGRESS.md`" in core.split("## Where things moved")[1]
    assert "pod-7f3a9c" not in core and "pod-b21e04" in core
    manual = (files / "docs/operations_manual.md").read_text()
    assert "Restarting ComfyUI: see `kb/comfyui.md`" in manual and "ps aux" not in manual
    assert "rename from docs/pod_notes_2024.md" in proposal.diff and "-## Learned mistakes" in proposal.diff
    shown = proposal.diff_markdown()
    assert "```" in proposal.diff and shown.startswith("````diff\n") and shown.endswith("\n````\n")


def test_applied_to_a_clone_the_budget_is_met_and_git_undoes_it(proposed, tmp_path):
    p, _, proposal, before = proposed
    trial = try_on_copy(proposal.out_dir, p.kb_root, tmp_path / "trial")
    clone = tmp_path / "trial"
    assert git(clone, "rev-parse", "--abbrev-ref", "HEAD") == trial.branch and git(clone, "status", "--porcelain") == ""
    again = audit_knowledge(p.model_copy(update={"kb_root": clone, "workspace": tmp_path / "ws",
                                                 "always_loaded": proposal.manifest["always_loaded_after"]}))
    assert again.budget["within_budget"].all() and again.duplicates.empty and again.stale.empty
    subprocess.run(trial.undo, shell=True, cwd=clone, check=True, capture_output=True)
    assert (clone / "kb/ComfyUI.md").read_text() == (p.kb_root / "kb/ComfyUI.md").read_text()
    assert snapshot(p.kb_root) == before


def test_apply_refuses_a_dirty_tree_and_a_moved_repository(proposed, tmp_path):
    p, _, proposal, _ = proposed
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(p.kb_root), str(clone))
    (clone / "CLAUDE.md").write_text("# edited by hand\n")
    with pytest.raises(ApplyRefusedError, match="uncommitted changes: CLAUDE.md"):
        apply_proposal(proposal.out_dir, clone)
    assert git(clone, "branch", "--list") == "* main"
    git(clone, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "hand edit")
    assert main(["knowledge", "apply", "--proposal", str(proposal.out_dir), "--repo", str(clone)]) == 1
    assert git(clone, "branch", "--list") == "* main"  # nothing was created


def test_cli_apply_commits_on_a_new_branch(proposed, tmp_path, capsys):
    p, _, proposal, _ = proposed
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(p.kb_root), str(clone))
    assert main(["knowledge", "apply", "--proposal", str(proposal.out_dir), "--repo", str(clone), "--branch", "lean"]) == 0
    assert "undo: git switch main && git branch -D lean" in capsys.readouterr().out
    assert (clone / "archive/2025-01-10_docs_pod_notes_2024.md").is_file() and git(clone, "status", "--porcelain") == ""
