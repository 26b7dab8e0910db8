"""Is the face model's same-person threshold right? Same- and different-person cosines measured on real photos.

The photos ship inside pinned packages, so the check runs offline on any machine: Grace Hopper
(matplotlib's sample data) and the cameraman (PyWavelets' sample data) are two different real people;
crops, mirror images, JPEG re-encodes, small rotations and downscales of one photo are the same person.
A threshold that separates these pairs is one the comparison can trust to say "this face is the character".
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from .faces import FaceEmbedder, embed_faces

SAME, DIFFERENT = "same person", "different people"


def real_people() -> dict[str, Image.Image]:
    """Two real people's photos from installed packages: Grace Hopper and the cameraman."""
    import pywt
    from matplotlib import cbook

    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
        hopper = im.convert("RGB")
    return {"hopper": hopper, "cameraman": Image.fromarray(pywt.data.camera()).convert("RGB")}


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    with Image.open(buf) as im:
        return im.convert("RGB")


def _centre_crop(image: Image.Image, keep: float) -> Image.Image:
    w, h = image.size
    dx, dy = int(w * (1 - keep) / 2), int(h * (1 - keep) / 2)
    return image.crop((dx, dy, w - dx, h - dy))


VARIANTS: dict[str, Callable[[Image.Image], Image.Image]] = {  # each keeps the person, changes the pixels
    "original": lambda im: im,
    "mirror": ImageOps.mirror,
    "crop 75%": lambda im: _centre_crop(im, 0.75),
    "jpeg q20": lambda im: _jpeg(im, 20),
    "rotate +10°": lambda im: im.rotate(10, resample=Image.Resampling.BICUBIC),
    "rotate -10°": lambda im: im.rotate(-10, resample=Image.Resampling.BICUBIC),
    "half size": lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS),
}


def photo_variants(people: dict[str, Image.Image]) -> pd.DataFrame:
    """One row per (person, variant) with its image: the set the threshold is checked on."""
    rows = [{"person": who, "variant": name, "image": fn(photo)} for who, photo in people.items() for name, fn in VARIANTS.items()]
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class IdentityCheck:
    """Pairwise cosines of the real-photo variants, and how the threshold splits them."""

    embedder: str
    threshold: float
    pairs: pd.DataFrame  # a, b, kind (same person / different people), cosine
    faces_found: int
    photos: int

    @property
    def table(self) -> pd.DataFrame:
        """Per kind of pair: count, min / median / max cosine, share at or above the threshold."""
        g = self.pairs.groupby("kind")["cosine"]
        table = pd.DataFrame({"pairs": g.size(), "min": g.min(), "median": g.median(), "max": g.max(),
                              "share ≥ threshold": g.apply(lambda c: float((c >= self.threshold).mean()))})
        return table.reindex([SAME, DIFFERENT]).round(3)

    @property
    def separated(self) -> bool:
        """True when every same-person pair is at or above the threshold and every different-person pair below it."""
        same, diff = (self.pairs.loc[self.pairs["kind"] == k, "cosine"] for k in (SAME, DIFFERENT))
        return bool(len(same) and len(diff) and same.min() >= self.threshold > diff.max())

    @property
    def note(self) -> str:
        """One sentence: faces found, the threshold, and whether the real photos confirm it."""
        t = self.table
        verdict = "separates them completely" if self.separated else "does NOT separate them: treat pass shares with care"
        return (f"{self.embedder}: faces found in {self.faces_found} of {self.photos} real photos. Same person: cosine "
                f"{t.loc[SAME, 'min']:.3f}–{t.loc[SAME, 'max']:.3f} (median {t.loc[SAME, 'median']:.3f}); different people: "
                f"{t.loc[DIFFERENT, 'min']:.3f}–{t.loc[DIFFERENT, 'max']:.3f} (median {t.loc[DIFFERENT, 'median']:.3f}). "
                f"The threshold {self.threshold:g} {verdict}.")

    def figure(self):
        """Histogram of both kinds of pair with the threshold as a dashed line."""
        fig, ax = plt.subplots(figsize=(6, 2.8))
        bins = np.linspace(min(-0.2, self.pairs["cosine"].min()), 1.0, 41)
        for kind, colour in ((DIFFERENT, "tab:red"), (SAME, "tab:green")):
            ax.hist(self.pairs.loc[self.pairs["kind"] == kind, "cosine"], bins=bins, alpha=0.6, color=colour, label=kind)
        ax.axvline(self.threshold, color="black", ls="--", lw=1, label=f"threshold {self.threshold:g}")
        ax.set_xlabel(f"cosine similarity of two faces ({self.embedder})", fontsize=8)
        ax.set_ylabel("pairs", fontsize=8)
        ax.legend(fontsize=7)
        fig.tight_layout()
        plt.close(fig)
        return fig


def check_identity_threshold(embedder: FaceEmbedder, threshold: float, people: dict[str, Image.Image] | None = None) -> IdentityCheck:
    """Embed every variant of every person, cosine of every pair of found faces, labelled same / different."""
    photos = photo_variants(real_people() if people is None else people)
    faces = embed_faces(embedder, list(photos["image"]))
    found = [(row.person, row.variant, face.vector) for row, face in zip(photos.itertuples(), faces) if face is not None]
    pairs = pd.DataFrame([
        {"a": f"{pa} / {va}", "b": f"{pb} / {vb}", "kind": SAME if pa == pb else DIFFERENT, "cosine": float(xa @ xb)}
        for (pa, va, xa), (pb, vb, xb) in combinations(found, 2)
    ], columns=["a", "b", "kind", "cosine"])  # fmt: skip
    return IdentityCheck(embedder.name, threshold, pairs, len(found), len(photos))


def pass_share(identity: pd.Series, threshold: float) -> pd.Series:
    """Per image: does its face pass the same-person threshold? An image without a face does not pass."""
    return identity.fillna(-1.0) >= threshold
