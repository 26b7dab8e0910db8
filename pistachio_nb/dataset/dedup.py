"""Near-duplicate clusters from perceptual hashes: a BK-tree finds close pairs without comparing all pairs,
union-find joins chains (A~B, B~C is one cluster), and each cluster keeps its best member.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


class BKTree:
    """Metric tree over integer hashes under Hamming distance; a radius query skips most of the tree."""

    def __init__(self) -> None:
        self.root: tuple[int, list[int], dict[int, tuple]] | None = None

    def add(self, value: int, index: int) -> None:
        """Insert `value` (identical values share one node and keep every index)."""
        if self.root is None:
            self.root = (value, [index], {})
            return
        node = self.root
        while True:
            d = hamming(value, node[0])
            if d == 0:
                node[1].append(index)
                return
            if d not in node[2]:
                node[2][d] = (value, [index], {})
                return
            node = node[2][d]

    def query(self, value: int, radius: int) -> list[int]:
        """Indexes of every stored value within `radius` bits of `value`."""
        found, todo = [], [self.root] if self.root else []
        while todo:
            node = todo.pop()
            d = hamming(value, node[0])
            if d <= radius:
                found.extend(node[1])
            todo.extend(child for k, child in node[2].items() if d - radius <= k <= d + radius)
        return found


def cluster_hashes(hashes: Sequence[int], radius: int) -> list[int]:
    """Cluster label per hash: the smallest index of its connected group of within-`radius` neighbours."""
    parent = list(range(len(hashes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    tree = BKTree()
    for i, h in enumerate(hashes):
        for j in tree.query(h, radius):
            a, b = find(i), find(j)
            parent[max(a, b)] = min(a, b)
        tree.add(h, i)
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
