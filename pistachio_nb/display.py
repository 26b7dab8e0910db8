"""What notebooks show: image grids, caption grids, full-text tables and the params that differ from the defaults.

Everything here renders without Jupyter (matplotlib figures; objects with `_repr_html_` that embed their
images), so a rendered page is self-contained and text a reader needs is never cut at pandas' 50 characters.
"""

from __future__ import annotations

import ast
import base64
import html
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from PIL import Image


def _as_image(item: Image.Image | str | Path | None) -> Image.Image | None:
    if item is None or isinstance(item, Image.Image):
        return item
    with Image.open(item) as im:
        return im.convert("RGB")


def image_grid(
    rows: Sequence[Sequence[Image.Image | str | Path | None]],
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    cell_inches: float = 2.2,
    title: str | None = None,
):
    """A rows x columns figure of images (None leaves a blank cell); returns the matplotlib Figure."""
    n_rows = max(1, len(rows))
    n_cols = max(1, max((len(r) for r in rows), default=1))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell_inches * n_cols, cell_inches * n_rows), squeeze=False)
    for r in range(n_rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            item = rows[r][c] if r < len(rows) and c < len(rows[r]) else None
            image = _as_image(item)
            if image is not None:
                ax.imshow(image)
            else:
                ax.set_frame_on(False)
            if col_labels and r == 0 and c < len(col_labels):
                ax.set_title(str(col_labels[c]), fontsize=8)
            if row_labels and c == 0 and r < len(row_labels):
                ax.set_ylabel(str(row_labels[r]), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    plt.close(fig)  # the notebook displays the returned figure once, not twice
    return fig


def save_figure(fig, dest: str | Path) -> Path:
    """Save a figure as PNG atomically (temp then rename)."""
    from .files import atomic_path

    dest = Path(dest)
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    return dest


# ---- tables a reader can read: full text, relative paths, picked columns, wide tables split
TABLE_STYLE = """<style>
.pistachio-table table{border-collapse:collapse;margin:0 0 .8em 0;font-size:12px}
div.pistachio-table.pistachio-table th,div.pistachio-table.pistachio-table td{padding:.25em .6em;border-bottom:1px solid #e4e4e4;
text-align:left;vertical-align:top;max-width:36em;white-space:pre-wrap;overflow-wrap:break-word}
.pistachio-table th{background:#f5f5f5;white-space:nowrap}
.pistachio-caption-grid{display:grid;grid-template-columns:repeat(var(--cols),minmax(0,1fr));gap:.8em;font-size:12px}
.pistachio-caption-grid figure{margin:0}.pistachio-caption-grid img{width:100%;height:auto;border:1px solid #ddd}
.pistachio-caption-grid figcaption{white-space:pre-wrap;overflow-wrap:anywhere;margin-top:.25em}
</style>"""
MAX_COLUMNS = 8  # wider tables are shown as several, each repeating the first column


def relative(value: Any, root: Path | Sequence[Path]) -> Any:
    """A path (or a string holding some) below a root written relative to the deepest such root; anything else unchanged."""
    roots = sorted([root] if isinstance(root, Path) else root, key=lambda r: len(str(r)), reverse=True)
    if isinstance(value, Path):
        for base in roots:
            if value.is_relative_to(base):
                return str(value.relative_to(base))
        return str(value)
    if isinstance(value, str):
        for base in roots:
            value = value.replace(str(base) + os.sep, "")
    return value


@dataclass
class Table:
    """A DataFrame shown in full: every character of text, paths relative to `root`, split when wide."""

    frame: pd.DataFrame
    max_columns: int = MAX_COLUMNS
    index: bool = False

    def parts(self) -> list[pd.DataFrame]:
        """The frame as column groups of at most `max_columns`, each starting with the first column."""
        cols = list(self.frame.columns)
        if len(cols) <= self.max_columns:
            return [self.frame]
        key, rest, step = cols[0], cols[1:], self.max_columns - 1
        return [self.frame[[key, *rest[i:i + step]]] for i in range(0, len(rest), step)]

    def _repr_html_(self) -> str:
        body = "".join(part.to_html(index=self.index, na_rep="", border=0) for part in self.parts())
        return f'{TABLE_STYLE}<div class="pistachio-table">{body}</div>'

    def __repr__(self) -> str:
        with pd.option_context("display.max_colwidth", None, "display.width", 200):
            return "\n\n".join(part.to_string(index=self.index) for part in self.parts())


def show(frame: pd.DataFrame, columns: Sequence[str] | None = None, root: str | Path | None = None,
         max_columns: int = MAX_COLUMNS, index: bool = False) -> Table:
    """A table for a notebook: `columns` picked (in that order), paths made relative to `root` (a notebook passes
    its workspace) or else to the repo."""
    from .paths import repo_root, resolve

    bases = [repo_root(), *([resolve(root)] if root is not None else [])]  # a relative workspace starts at the repo
    picked = frame[list(columns)] if columns is not None else frame
    return Table(picked.map(lambda v: relative(v, bases)), max_columns=max_columns, index=index)


def facts(mapping: dict[str, Any], drop: Sequence[str] = (), root: str | Path | None = None) -> Table:
    """A dict (a recommendation, a summary) as a field/value table, without the keys in `drop` (shown elsewhere)."""
    rows = [(key, value if isinstance(value, (str, Path)) else repr(value)) for key, value in mapping.items()
            if key not in drop]
    return show(pd.DataFrame(rows, columns=["field", "value"]), root=root)


def cell_defaults(notebook: str) -> dict[str, Any]:
    """The `name: type = value` literals of a notebook's parameters cell, read with ast (papermill takes seconds to import)."""
    from .paths import repo_root

    cells = json.loads((repo_root() / "notebooks" / f"{notebook}.ipynb").read_text(encoding="utf-8"))["cells"]
    source = "".join(next(c["source"] for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])))
    return {node.target.id: ast.literal_eval(node.value) for node in ast.parse(source).body
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None}


def params_table(p) -> Table:
    """The notebook's validated params that differ from its parameters cell's defaults: parameter, value."""
    defaults = type(p).validate_values(cell_defaults(p.notebook), check_paths=False)
    rows = [(name, getattr(p, name)) for name in type(p).model_fields if getattr(p, name) != getattr(defaults, name)]
    frame = pd.DataFrame(rows or [("(none)", "every value is the parameters cell's default")],
                         columns=["parameter", "value (differs from the parameters cell)"])
    return show(frame.astype({frame.columns[1]: object}).map(lambda v: v if isinstance(v, (str, Path)) else repr(v)))


@dataclass
class CaptionGrid:
    """Thumbnails with the full caption under each, as self-contained HTML (images embedded)."""

    items: list[tuple[str, str, str]]  # (base64 JPEG, title, caption)
    columns: int = 4

    def _repr_html_(self) -> str:
        cells = "".join(f'<figure><img alt="{html.escape(title)}" src="data:image/jpeg;base64,{data}">'
                        f"<figcaption><b>{html.escape(title)}</b>\n{html.escape(caption)}</figcaption></figure>"
                        for data, title, caption in self.items)
        return f'{TABLE_STYLE}<div class="pistachio-caption-grid" style="--cols:{self.columns}">{cells}</div>'

    def __repr__(self) -> str:
        return "\n".join(f"{title}: {caption}" for _, title, caption in self.items)


def caption_grid(images: Sequence[str | Path], captions: Sequence[str], columns: int = 4, thumb_px: int = 256) -> CaptionGrid:
    """A grid of thumbnails (longest side `thumb_px`) each with its file name and full caption below."""
    items = []
    for path, caption in zip(images, captions):
        image = _as_image(path)
        image.thumbnail((thumb_px, thumb_px))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
        items.append((base64.b64encode(buffer.getvalue()).decode("ascii"), Path(path).name, str(caption)))
    return CaptionGrid(items, columns)
