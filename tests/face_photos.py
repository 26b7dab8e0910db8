"""Real-photo helpers shared by the face tests: several people in one picture."""

from __future__ import annotations

from PIL import Image


def side_by_side(*images: Image.Image, height: int = 400) -> Image.Image:
    """One group photo: the people next to each other, each scaled to `height`."""
    row = [im.resize((round(im.width * height / im.height), height)) for im in images]
    canvas = Image.new("RGB", (sum(im.width for im in row), height), "white")
    for i, im in enumerate(row):
        canvas.paste(im, (sum(r.width for r in row[:i]), 0))
    return canvas
