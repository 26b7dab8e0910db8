"""Deterministic train/validation split by near-duplicate cluster, so no copy of a validation image trains."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def validation_clusters(cluster_keys: Iterable[str], ratio: float, seed: int) -> set[str]:
    """Keys of the clusters held out for validation: about `ratio` of them, at least one when ratio > 0
    and there are two or more clusters, never all. Ranking by a seeded hash of each key (not a shuffle)
    keeps earlier choices stable when images are added.
    """
    keys = sorted(set(cluster_keys))
    if ratio <= 0 or len(keys) < 2:
        return set()
    n_val = min(len(keys) - 1, max(1, round(ratio * len(keys))))
    ranked = sorted(keys, key=lambda k: hashlib.sha256(f"{seed}:{k}".encode()).hexdigest())
    return set(ranked[:n_val])
