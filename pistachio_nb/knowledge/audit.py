"""`audit_knowledge`: run every detector over a Markdown knowledge base and write the tables, charts and report."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ..display import save_figure
from ..errors import ParamsError
from ..files import write_sidecar, write_text
from ..paths import resolve
from .conflicts import conflicts_table
from .disposition import disposition_table, report_markdown
from .duplication import DuplicateGroup, duplicates_table, find_duplicates
from .growth import growth_figure, growth_table
from .inventory import KbFile, budget_figure, budget_table, inventory_table, load_kb
from .params import KnowledgeAuditParams
from .staleness import stale_table, superseded_table
from .templates import template_table


@dataclass
class KnowledgeAudit:
    """Every table and figure of one audit, plus where they were written."""

    root: Path
    out_dir: Path
    inventory: pd.DataFrame
    budget: pd.DataFrame
    templates: pd.DataFrame
    duplicates: pd.DataFrame
    stale: pd.DataFrame
    superseded: pd.DataFrame
    growth: pd.DataFrame
    conflicts: pd.DataFrame
    disposition: pd.DataFrame
    summary: dict[str, object]
    figures: dict[str, object] = field(repr=False)
    files: list[KbFile] = field(repr=False, default_factory=list)  # as read: what a proposal restructures
    groups: list[DuplicateGroup] = field(repr=False, default_factory=list)

    @property
    def report_path(self) -> Path:
        return self.out_dir / "report.md"

    @property
    def summary_table(self) -> pd.DataFrame:
        """The headline figures as a two-column table (what a notebook shows)."""
        return pd.DataFrame(list(self.summary.items()), columns=["figure", "value"])

    def report_embedded(self) -> str:
        """report.md with its chart inlined as a data URI, so it renders wherever it is shown (a notebook, HTML)."""
        png = base64.b64encode((self.out_dir / "budget.png").read_bytes()).decode()
        return self.report_path.read_text().replace("](budget.png)", f"](data:image/png;base64,{png})")


def _check_output_outside(root: Path, out_dir: Path) -> None:
    if out_dir.resolve().is_relative_to(root.resolve()):
        raise ParamsError(f"workspace output {out_dir} lies inside kb_root {root}",
                          fix="choose a workspace outside the audited folder: the audit never writes into it")


def _summary(root: Path, budget: int, inv: pd.DataFrame, parts: dict[str, pd.DataFrame]) -> dict[str, object]:
    spent = int(inv.loc[inv["loading"] == "always", "tokens"].sum())
    actions = parts["disposition"]["action"].str.replace(r" into .*", " into", regex=True).value_counts()
    return {
        "audited": f"{len(inv)} Markdown files under {root} on {datetime.now(timezone.utc):%Y-%m-%d}",
        "always-loaded tokens": f"{spent} of a {budget} budget ({100 * spent / budget:.0f}%)",
        "blank templates (files / sections)": f"{(parts['templates']['scope'] == 'whole file').sum()} / "
                                              f"{(parts['templates']['scope'] != 'whole file').sum()}",
        "duplicate groups": len(parts["duplicates"]),
        "stale sections": len(parts["stale"]),
        "superseded-term mentions": len(parts["superseded"]),
        "conflicting rule pairs": len(parts["conflicts"]),
        "suggested actions": ", ".join(f"{a}: {n}" for a, n in sorted(actions.items())),
    }


def _write(audit: KnowledgeAudit, params: KnowledgeAuditParams) -> None:
    tables = ["inventory", "budget", "templates", "duplicates", "stale", "superseded", "growth", "conflicts",
              "disposition"]
    written = []
    for name in tables:
        written.append(write_text(audit.out_dir / f"{name}.csv", getattr(audit, name).to_csv(index=False)))
    for name, fig in audit.figures.items():
        written.append(save_figure(fig, audit.out_dir / f"{name}.png"))
    details = {"Blank templates": audit.templates, "Duplicates": audit.duplicates, "Stale sections": audit.stale,
               "Superseded terms": audit.superseded, "Conflicting rules": audit.conflicts}
    report = write_text(audit.report_path, report_markdown(str(audit.root), audit.summary, audit.disposition, details))
    write_sidecar(report, params, artifacts=[p.name for p in written])


def audit_knowledge(params: KnowledgeAuditParams, out_name: str = "knowledge_audit") -> KnowledgeAudit:
    """Audit `params.kb_root` read only.

    Tables, charts and report.md go to <workspace>/<out_name>/; nothing below kb_root is changed. No progress
    bar: a notes folder of tens of files takes under a second, 300 files about 10 s (bench_knowledge_audit.py)."""
    root = resolve(params.kb_root)
    out_dir = resolve(params.workspace) / out_name
    _check_output_outside(root, out_dir)  # before anything is created
    files = load_kb(root, params.always_loaded)
    inv = inventory_table(files)
    parts = {"templates": template_table(files, params.placeholder_patterns, params.blank_share)}
    groups = find_duplicates(files, params.duplicate_threshold)
    parts["duplicates"] = duplicates_table(groups)
    parts["stale"] = stale_table(files, params.stale_days)
    parts["superseded"] = superseded_table(files, params.superseded_terms)
    parts["conflicts"] = conflicts_table(files)
    growth = growth_table(root, params.growth_sections)
    parts["disposition"] = disposition_table(files, parts["templates"], groups, parts["stale"], parts["superseded"],
                                             params.context_budget)
    audit = KnowledgeAudit(
        root, out_dir, inv, budget_table(inv, params.context_budget), growth=growth,
        summary=_summary(root, params.context_budget, inv, parts),
        figures={"budget": budget_figure(inv, params.context_budget), "growth": growth_figure(growth)}, **parts,
        files=files, groups=groups,
    )
    _write(audit, params)
    return audit
