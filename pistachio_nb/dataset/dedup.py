"""Near-duplicate clusters from perceptual hashes: every pair within the threshold is found by a vectorised
all-pairs Hamming comparison, union-find joins chains (A~B, B~C is one cluster), and each cluster keeps its
best member.

Why not a BK-tree: at a radius of 10 bits out of 64 it prunes almost nothing (pHash distances bunch around
20-32), so in Python it was measured ~100x slower than this: 2,000 hashes 1.7 s vs 0.02 s, 10,000 hashes
48 s vs 0.25 s. Comparisons run in blocks of about a million, so memory stays bounded (~10 MB).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np

BLOCK = 1 << 20  # comparisons per vectorised block


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def close_pairs(hashes: Sequence[int], radius: int) -> Iterator[tuple[int, int]]:
    """Every index pair (i < j) whose 64-bit hashes differ in at most `radius` bits."""
    h = np.array(hashes, dtype=np.uint64)
    rows = max(1, BLOCK // max(1, len(h)))
    for start in range(0, len(h), rows):
        dist = np.bitwise_count(h[start:start + rows, None] ^ h[None, start:])
        for i, j in zip(*np.nonzero(dist <= radius)):
            if i < j:  # columns start at `start`, so row i and column i are the same image
                yield start + int(i), start + int(j)


def cluster_hashes(hashes: Sequence[int], radius: int) -> list[int]:
    """Cluster label per hash: the smallest index of its connected group of within-`radius` neighbours."""
    parent = list(range(len(hashes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in close_pairs(hashes, radius):
        a, b = find(i), find(j)
        parent[max(a, b)] = min(a, b)
    return [find(i) for i in range(len(hashes))]


def best_member(members: Sequence[dict]) -> dict:
    """The member to keep: most pixels, then sharpest, then the first path (deterministic)."""
    return min(members, key=lambda r: (-r["width"] * r["height"], -r["blur"], r["path"]))


def mark_duplicates(rows: list[dict], threshold: int) -> None:
    """Cluster the readable images by perceptual hash; the best of each stays `ok`, the rest become `duplicate`."""
    ok = [r for r in rows if r["status"] == "ok"]
    hashes = [int(r["phash"], 16) for r in ok]
    groups: dict[int, list[dict]] = defaultdict(list)
    for row, label in zip(ok, cluster_hashes(hashes, threshold)):
        groups[label].append(row)
    keepers = sorted(((best_member(g), g) for g in groups.values()), key=lambda kg: kg[0]["path"])
    for cluster_id, (keeper, members) in enumerate(keepers):
        for r in members:
            r.update(cluster=cluster_id, cluster_size=len(members), kept=r is keeper)
            if r is not keeper:
                bits = hamming(int(r["phash"], 16), int(keeper["phash"], 16))
                r.update(status="duplicate", duplicate_of=keeper["path"], reason=f"near-duplicate of {keeper['path']} ({bits} bits apart)")
    for r in rows:
        r.setdefault("kept", False)
