"""Looking at captions: a sample grid, an ipywidgets review grid with save, and bulk find/replace.

Everything saves through `CaptionStore`, so sidecars and metadata.jsonl stay equal and replaced text
is backed up. Headless (papermill, cron) the widget is built but nothing is written until a person
clicks Save, and find/replace only previews unless asked to apply.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
from PIL import Image

from ..display import CaptionGrid, caption_grid
from .postprocess import phrase_pattern
from .store import CaptionStore, current_caption, load_rows


def sample_grid(root: Path, rows: list[dict], count: int) -> CaptionGrid:
    """The first `count` images, each with its whole caption under it, read side by side."""
    picked = rows[:count]
    return caption_grid([root / r["file_name"] for r in picked], [r.get("text") or "(empty)" for r in picked])


def find_replace(root: Path, find: str, replace: str, apply: bool = False, whole_words: bool = True) -> pd.DataFrame:
    """Preview (or, with `apply`, write) a caption-wide replacement; returns file_name, before, after."""
    if not find:
        return pd.DataFrame(columns=["file_name", "before", "after"])
    rows = load_rows(root)
    pattern = phrase_pattern(find) if whole_words else None
    changes = {}
    for row in rows:
        before = current_caption(root, row)
        after = pattern.sub(lambda _m: replace, before) if pattern else before.replace(find, replace)
        if after != before:
            changes[row["file_name"]] = (before, after)
    if apply and changes:
        CaptionStore(root, rows).save({n: after for n, (_, after) in changes.items()}, source="find/replace")
    return pd.DataFrame([{"file_name": n, "before": b, "after": a} for n, (b, a) in changes.items()],
                        columns=["file_name", "before", "after"])  # fmt: skip


def _thumbnail(path: Path, side: int) -> bytes:
    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((side, side))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=85)
        return buf.getvalue()


def review_grid(root: Path, page_size: int = 12, thumb: int = 192):
    """An ipywidgets pager of image + editable caption + Save (sidecar and metadata together, with backup)."""
    import ipywidgets as w

    rows = load_rows(root)
    status = w.HTML()
    page = w.IntSlider(value=0, min=0, max=max(0, (len(rows) - 1) // page_size), description="page")
    body = w.VBox()

    def save(name: str, area: w.Textarea) -> None:
        CaptionStore(root, rows).save({name: area.value.strip()}, source="review")  # one backup folder per click
        status.value = f"saved <code>{name}</code>"

    def show(_=None) -> None:
        cards = []
        for row in rows[page.value * page_size : (page.value + 1) * page_size]:
            area = w.Textarea(value=current_caption(root, row), layout=w.Layout(width="480px", height="110px"))
            button = w.Button(description="Save", icon="save")
            button.on_click(lambda _b, n=row["file_name"], a=area: save(n, a))
            image = w.Image(value=_thumbnail(root / row["file_name"], thumb), format="jpeg")
            cards.append(w.HBox([image, w.VBox([w.Label(row["file_name"]), area, button])]))
        body.children = cards

    page.observe(show, names="value")
    show()
    return w.VBox([page, body, status])
