"""Near-duplicate clusters from perceptual hashes: every pair within the threshold is found by a vectorised
all-pairs Hamming comparison, union-find joins chains (A~B, B~C is one group), and each group is split by
distance to its kept images: its best member is kept, then the best member farther than the threshold from
every kept image, and so on; each other member is a duplicate of its nearest kept image. A duplicate is always within the threshold of the image it
is a duplicate of; a chain never drops a distinct shot silently. A group with several kept images is flagged
for review, and stays on one side of the train/validation split.

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


def rank_key(r: dict) -> tuple:
    """The order in which members are kept: most pixels, then sharpest, then the first path (deterministic)."""
    return -r["width"] * r["height"], -r["blur"], r["path"]


def split_group(members: Sequence[dict], threshold: int) -> list[list[dict]]:
    """A chained group as clusters, each its kept image first. Kept: the best member, then the best of those
    farther than `threshold` from every image kept so far, and so on; every other member joins its nearest
    kept image (a copy goes with its own original, not with a look-alike that happened to rank first)."""
    ranked, keepers, covered = sorted(members, key=rank_key), [], set()
    for r in ranked:
        if id(r) not in covered:
            keepers.append(r)
            h = int(r["phash"], 16)
            covered |= {id(m) for m in ranked if hamming(int(m["phash"], 16), h) <= threshold}
    clusters = {id(k): [k] for k in keepers}
    for r in ranked:
        if id(r) not in clusters:
            h = int(r["phash"], 16)
            clusters[id(min(keepers, key=lambda k: hamming(int(k["phash"], 16), h)))].append(r)
    return list(clusters.values())


def mark_duplicates(rows: list[dict], threshold: int) -> None:
    """Cluster the readable images by perceptual hash; each cluster's kept image stays `ok`, the rest become
    `duplicate`. Sets `group` (the chained group, which decides the split), `cluster` and `chained`."""
    ok = [r for r in rows if r["status"] == "ok"]
    groups: dict[int, list[dict]] = defaultdict(list)
    for row, label in zip(ok, cluster_hashes([int(r["phash"], 16) for r in ok], threshold)):
        groups[label].append(row)
    clustered = sorted((split_group(g, threshold) for g in groups.values()), key=lambda cs: cs[0][0]["path"])
    cluster_id = 0
    for group_id, clusters in enumerate(clustered):
        for members in sorted(clusters, key=lambda c: c[0]["path"]):
            keeper = members[0]
            keeper.update(kept=True, chained=len(clusters) > 1)
            for r in members:
                r.update(group=group_id, cluster=cluster_id, cluster_size=len(members))
            for r in members[1:]:
                bits = hamming(int(r["phash"], 16), int(keeper["phash"], 16))
                r.update(status="duplicate", kept=False, duplicate_of=keeper["path"], reason=f"near-duplicate of {keeper['path']} ({bits} bits apart)")
            cluster_id += 1
    for r in rows:
        r.setdefault("kept", False)
