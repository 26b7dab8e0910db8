"""What notebooks show: image grids and small table helpers (matplotlib and pandas, no Jupyter needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
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
