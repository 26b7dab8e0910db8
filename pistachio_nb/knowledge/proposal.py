"""`propose_knowledge`: a restructured copy of the audited knowledge base, written into the workspace (never
into kb_root), with a before/after table, a unified diff to review and the manifest `apply_proposal` reads."""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..files import write_json, write_sidecar, write_text
from . import gitlog
from .audit import KnowledgeAudit
from .conflicts import conflicts_table
from .duplication import find_duplicates
from .inventory import KbFile, estimate_tokens, load_kb
from .params import KnowledgeAuditParams
from .restructure import (Draft, add_pointers, apply_edits, archive_files, copy_edits, fit_budget, learnings_head,
                          merge_file, replace_terms, stale_edits)
from .staleness import stale_table, superseded_table
from .templates import template_table

PROPOSAL_DIR = "knowledge_proposal"
MANIFEST = "proposal.json"


@dataclass
class Proposal:
    """Where the proposed tree lies, what changed and how the headline figures move."""

    out_dir: Path
    before_after: pd.DataFrame
    actions: pd.DataFrame
    files: pd.DataFrame  # per file before -> after: unchanged, edited, archived or merged away; loading; tokens
    diff: str
    manifest: dict

    @property
    def files_dir(self) -> Path:
        return self.out_dir / "files"

    def diff_markdown(self) -> str:
        """The diff as a Markdown code block whose fence is longer than any backtick run inside (notes hold fences)."""
        longest = max((len(run) for run in re.findall(r"`+", self.diff)), default=0)
        fence = "`" * max(3, longest + 1)
        return f"{fence}diff\n{self.diff}{fence}\n"


def headline(files: list[KbFile], params: KnowledgeAuditParams) -> dict[str, int]:
    """The figures a restructuring should move: always-loaded cost and what the detectors still find."""
    templates = template_table(files, params.placeholder_patterns, params.blank_share)
    always = [f for f in files if f.always_loaded]
    return {
        "always-loaded tokens": sum(f.tokens for f in always),
        "always-loaded files": len(always),
        "Markdown files (outside archive/)": len(files),
        "duplicate groups": len(find_duplicates(files, params.duplicate_threshold)),
        "always-loaded blank templates": int((templates["loading"] == "always").sum()),
        "stale sections": len(stale_table(files, params.stale_days)),
        "superseded-term mentions": len(superseded_table(files, params.superseded_terms)),
        "conflicting rule pairs (left for you)": len(conflicts_table(files)),
    }


def restructure(audit: KnowledgeAudit, params: KnowledgeAuditParams) -> Draft:
    """Every step, in an order where each works on what the previous left: files first, then lines, then sections."""
    files = {f.rel: f for f in audit.files}
    draft = Draft({rel: f.text for rel, f in files.items()}, [rel for rel, f in files.items() if f.always_loaded])
    action = audit.disposition.set_index("file")["action"]
    archive_files(draft, files, [rel for rel in files if action[rel] == "archive"])
    for g in audit.groups:
        if g.kind != "near-duplicate text":
            for rel in g.spans:
                if rel != g.canonical and rel in draft.texts and g.canonical in draft.texts:
                    merge_file(draft, rel, g.canonical)
    for rel in audit.templates.loc[audit.templates["scope"] == "whole file", "file"]:
        if rel in draft.always:
            draft.drop_always(rel)
            draft.log(rel, "stop loading", "a blank template: kept as it is, loaded once it is filled in")
    live = {rel for rel in draft.texts if rel in files}
    edits = stale_edits([r for r in audit.stale.to_dict("records") if r["file"] in live], files)
    for rel, more in copy_edits(audit.groups, live, files).items():
        edits.setdefault(rel, []).extend(more)
    for rel, mine in sorted(edits.items()):
        draft.texts[rel] = apply_edits(draft.texts[rel], mine)
        draft.log(rel, "dedupe", f"{len(mine)} stale section(s) or copied paragraph(s) now point to their newer home")
    replace_terms(draft, params.superseded_terms)
    core = next((r for r in draft.always if r != params.learnings_file), None)
    keep = params.learnings_file if params.learnings_file in draft.always else None
    if keep:
        learnings_head(draft, keep, params.growth_sections, params.critical_rules)
    if core:
        fit_budget(draft, core, keep, params.context_budget)
        add_pointers(draft, core)
    return draft


def unified_diff(before: dict[str, str], after: dict[str, str], renames: dict[str, str]) -> str:
    """A git-style diff: renames as headers only (their text is unchanged), edits and deletions line by line."""
    out = [f"diff --git a/{old} b/{new}\nrename from {old}\nrename to {new}\n" for old, new in sorted(renames.items())]
    moved = set(renames) | set(renames.values())
    for rel in sorted((set(before) | set(after)) - moved):
        a, b = before.get(rel), after.get(rel)
        if a != b:
            out.append("".join(difflib.unified_diff(
                (a or "").splitlines(True), (b or "").splitlines(True),
                fromfile=f"a/{rel}" if a is not None else "/dev/null", tofile=f"b/{rel}" if b is not None else "/dev/null")))
    return "".join(out)


def files_table(before: list[KbFile], draft: Draft) -> pd.DataFrame:
    """One row per original file: what happened to it, where it is now, its loading and tokens before and after."""
    rows = []
    for f in before:
        now = draft.renames.get(f.rel, f.rel)
        text = draft.texts.get(now)
        change = ("archived" if f.rel in draft.renames else "merged away" if text is None
                  else "unchanged" if text == f.text else "edited")
        rows.append({"file": f.rel, "change": change, "now": now if text is not None else "",
                     "loading_before": "always" if f.always_loaded else "on demand",
                     "loading_after": "always" if now in draft.always else "on demand" if text is not None else "",
                     "tokens_before": f.tokens, "tokens_after": estimate_tokens(text) if text is not None else 0})
    return pd.DataFrame(rows)


def _head_commit(root: Path) -> str | None:
    try:
        return gitlog.git(root, "rev-parse", "HEAD").decode().strip() if gitlog.is_git_folder(root) else None
    except subprocess.CalledProcessError:  # a repository without commits
        return None


def _write_tree(dest: Path, draft: Draft, files: dict[str, KbFile]) -> None:
    """Write the proposed files, each dated like the file it came from, so a re-audit reads the same ages."""
    sources = {new: old for old, new in draft.renames.items()}
    for rel, text in draft.texts.items():
        path = write_text(dest / rel, text)
        source = files.get(sources.get(rel, rel))
        if source:
            stamp = source.last_change.timestamp()
            os.utime(path, (stamp, stamp))


def propose_knowledge(audit: KnowledgeAudit, params: KnowledgeAuditParams) -> Proposal:
    """Write <workspace>/knowledge_proposal/: files/ (the whole proposed tree), proposal.diff, before_after.csv,
    actions.csv, files.csv and proposal.json. The audited folder is not touched; `pistachio knowledge apply` applies it."""
    files = {f.rel: f for f in audit.files}
    draft = restructure(audit, params)
    out = audit.out_dir.parent / PROPOSAL_DIR
    tree = out / "files"
    if tree.exists():
        shutil.rmtree(tree)  # our own output from an earlier run: a stale file there would look proposed
    _write_tree(tree, draft, files)
    after = load_kb(tree, draft.always)
    table = pd.DataFrame({"before": headline(audit.files, params), "after": headline(after, params)})
    table = table.rename_axis("figure").reset_index()
    table["budget"] = [params.context_budget] + [""] * (len(table) - 1)
    actions = pd.DataFrame(draft.actions, columns=["file", "action", "detail"])
    before_texts = {rel: f.text for rel, f in files.items()}
    diff = unified_diff(before_texts, draft.texts, draft.renames)
    changed = sorted(rel for rel in draft.texts if before_texts.get(rel) != draft.texts[rel] and rel not in draft.renames.values())
    manifest = {
        "kb_root": str(audit.root), "base_commit": _head_commit(audit.root),
        "always_loaded_before": [rel for rel, f in files.items() if f.always_loaded], "always_loaded_after": draft.always,
        "context_budget": params.context_budget, "renames": draft.renames, "writes": changed,
        "deletes": sorted(set(files) - set(draft.texts) - set(draft.renames)),
    }
    write_text(out / "proposal.diff", diff)
    write_text(out / "before_after.csv", table.to_csv(index=False))
    per_file = files_table(audit.files, draft)
    write_text(out / "actions.csv", actions.to_csv(index=False))
    write_text(out / "files.csv", per_file.to_csv(index=False))
    write_sidecar(write_json(out / MANIFEST, manifest), params)
    return Proposal(out, table, actions, per_file, diff, manifest)
