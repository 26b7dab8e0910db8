"""07_knowledge_audit params: the knowledge base, its budget and the detectors' thresholds.

Defaults live only in the notebook's `parameters` cell; each description equals that line's comment.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator

from ..params import NotebookParams


class KnowledgeAuditParams(NotebookParams):
    notebook: ClassVar[str] = "07_knowledge_audit"

    workspace: Path = Field(description="character workspace folder; the audit writes to <workspace>/knowledge_audit/")
    input_paths: ClassVar[dict[str, str]] = {"kb_root": "dir", "skills_dir": "dir"}

    kb_root: Path = Field(description="folder of Markdown files to audit (read only, searched recursively)")
    always_loaded: list[str] = Field(description="globs relative to kb_root read before every task")
    context_budget: int = Field(gt=0, description="estimated tokens you accept spending on always-loaded files before the first task")
    placeholder_patterns: list[str] = Field(min_length=1, description="regexes of placeholder lines ([FILL IN], TODO)")
    blank_share: float = Field(gt=0, le=1, description="flag a file or section when at least this share of its lines are placeholders")
    duplicate_threshold: float = Field(gt=0, le=1, description="estimated Jaccard similarity of word 5-grams at which two paragraphs count as copies")
    stale_days: int = Field(ge=1, description="a section is stale when a file changed at least this many days later has the same heading")
    superseded_terms: dict[str, str] = Field(description="old term -> what replaced it; every mention is listed")
    growth_sections: list[str] = Field(description="headings whose line count is followed through git history")
    learnings_file: str = Field(description="the one learnings file (relative to kb_root); the proposal gives it a critical-rules head")
    critical_rules: int = Field(ge=1, le=100, description="at most this many one-line rules in that head")
    skills_dir: Path = Field(description="the suite's generated skill files, audited like any knowledge base")

    @field_validator("placeholder_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"{pattern!r} is not a valid regular expression: {err}") from None
        return patterns
