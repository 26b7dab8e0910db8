"""Rule growth: the line count of named sections (e.g. a learned-mistakes list) at every commit, plotted."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from . import gitlog
from .inventory import MARKDOWN_SUFFIXES
from .markdown import parse_markdown


def section_lines(text: str, names: list[str]) -> dict[str, int]:
    """Heading -> its non-blank lines, for each heading that contains one of `names` (case-insensitive).

    Subsections count: a rules list split into themed subsections is still one list."""
    doc = parse_markdown(text)
    wanted = [n.casefold() for n in names]
    return {
        s.title: len(doc.body_lines(s, subtree=True))
        for s in doc.sections
        if s.level and any(n in s.title.casefold() for n in wanted)
    }


def growth_table(root: Path, names: list[str]) -> pd.DataFrame:
    """One row per commit x matching section: its line count then. Only changed files are read, by one git process."""
    columns = ["date", "commit", "file", "section", "lines"]
    commits = gitlog.history(root) if names else []
    specs = [(c.sha, p) for c in commits for p in c.paths if p.lower().endswith(MARKDOWN_SUFFIXES)]
    texts = dict(zip(specs, gitlog.read_at(root, specs)))
    current: dict[str, dict[str, int]] = {}
    rows = []
    for commit in commits:
        for path in commit.paths:
            if (commit.sha, path) in texts:
                text = texts[(commit.sha, path)]
                current[path] = section_lines(text, names) if text is not None else {}
        rows += [
            {"date": commit.date, "commit": commit.sha[:10], "file": path, "section": title, "lines": n}
            for path, counts in sorted(current.items())
            for title, n in counts.items()
        ]
    return pd.DataFrame(rows, columns=columns)


def growth_figure(growth: pd.DataFrame):
    """Lines per tracked section over time (a step plot: the count holds until the next commit)."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for (rel, title), part in growth.groupby(["file", "section"], sort=True):
        ax.step(part["date"], part["lines"], where="post", marker="o", label=f"{rel}: {title}")
    if growth.empty:
        ax.text(0.5, 0.5, "no git history or no matching sections", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.legend(fontsize=8)
    ax.set_ylabel("non-blank lines")
    ax.set_title("growth of rule sections over git history")
    fig.autofmt_xdate()
    fig.tight_layout()
    plt.close(fig)
    return fig
