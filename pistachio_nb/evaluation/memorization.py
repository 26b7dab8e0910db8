"""Memorization: how close each generated image is to its nearest training image.

Two views: pHash Hamming distance (catches near pixel copies, even resized or re-encoded) and
embedding similarity (catches copies of composition and pose that pixels miss). An output that
copies a training photo is the clearest sign of overfitting.
"""

from __future__ import annotations

from collections.abc import Sequence

import imagehash
import numpy as np
import pandas as pd
from PIL import Image

HASH_BITS = 64


def phashes(images: Sequence[Image.Image]) -> np.ndarray:
    """64-bit perceptual hashes as a (n, 64) boolean array."""
    return np.array([imagehash.phash(im).hash.ravel() for im in images], dtype=bool).reshape(len(images), HASH_BITS)


def nearest_training(gen_hash: np.ndarray, train_hash: np.ndarray, gen_emb: np.ndarray, train_emb: np.ndarray,
                     train_names: Sequence[str]) -> pd.DataFrame:
    """Per generated image: the nearest training image by pHash (bits differing) and by embedding (cosine)."""
    distances = (gen_hash[:, None, :] != train_hash[None, :, :]).sum(axis=2)
    similarity = gen_emb @ train_emb.T
    by_hash, by_emb = distances.argmin(axis=1), similarity.argmax(axis=1)
    names = np.asarray(train_names, dtype=object)
    return pd.DataFrame({
        "nearest_by_phash": names[by_hash],
        "phash_distance": distances[np.arange(len(by_hash)), by_hash],
        "nearest_by_embedding": names[by_emb],
        "train_similarity": similarity[np.arange(len(by_emb)), by_emb],
    })  # fmt: skip


def flag_copies(nearest: pd.DataFrame, max_phash_distance: int, min_similarity: float) -> pd.Series:
    """True where an output is a near copy of a training image by either measure."""
    return (nearest["phash_distance"] <= max_phash_distance) | (nearest["train_similarity"] >= min_similarity)
