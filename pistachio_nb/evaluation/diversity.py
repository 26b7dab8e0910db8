"""Diversity across seeds: do different seeds of one prompt still give different pictures?

An overfit LoRA collapses every seed onto the same few training poses; the mean pairwise
embedding distance between the seeds of one prompt falls.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def mean_pairwise_distance(embeddings: np.ndarray) -> float:
    """Mean cosine distance (1 - similarity) over all pairs of unit vectors; NaN with fewer than two."""
    n = len(embeddings)
    if n < 2:
        return float("nan")
    sims = embeddings @ embeddings.T
    return float(1.0 - sims[np.triu_indices(n, k=1)].mean())


def seed_diversity(images: pd.DataFrame, embeddings: np.ndarray, by: list[str]) -> pd.DataFrame:
    """Per group of `by` (e.g. checkpoint, scale, prompt) the seeds' mean pairwise distance, as `diversity`."""
    rows = []
    for key, idx in images.groupby(by, sort=False).indices.items():
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))),
                     "diversity": mean_pairwise_distance(embeddings[idx])})
    return pd.DataFrame(rows, columns=[*by, "diversity"])
