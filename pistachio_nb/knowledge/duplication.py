"""Near-duplicate paragraphs across a knowledge base (word shingles + MinHash + LSH) and same-name files.

MinHash (Broder 1997): the chance that two sets share their minimum under a random hash equals their
Jaccard similarity, so 128 minima per paragraph estimate it; LSH banding finds candidate pairs without
comparing every pair. Implemented here in numpy.
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from .inventory import KbFile
from .markdown import words

SHINGLE_WORDS = 5  # word 5-grams: long enough that shared boilerplate phrases do not make paragraphs "similar"
MIN_WORDS = 12  # shorter paragraphs (a heading-like line, a one-line bullet) are too short to call copies
NUM_PERM = 128


@dataclass(frozen=True)
class Unit:
    """One paragraph: where it is and how many words it holds."""

    file: str
    start: int
    end: int
    section: str
    n_words: int


@dataclass(frozen=True)
class DuplicateGroup:
    """Near-duplicate text (or same-name files) spread over several files; `canonical` is the suggested home."""

    kind: str  # "near-duplicate text" or "same name, different case"
    topic: str
    spans: dict[str, list[tuple[int, int]]]  # file -> line spans
    words_per_file: dict[str, int]
    similarity: float
    canonical: str


def shingle_hashes(text: str, k: int = SHINGLE_WORDS) -> np.ndarray:
    """Distinct crc32 hashes of the word k-grams of a text."""
    w = words(text)
    grams = {" ".join(w[i : i + k]) for i in range(max(1, len(w) - k + 1))}
    return np.fromiter((zlib.crc32(g.encode()) for g in grams), dtype=np.uint64, count=len(grams))


def minhash_params(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """NUM_PERM random multiply-shift hash functions h(x) = ((a*x + b) mod 2^64) >> 32, a odd (Dietzfelbinger)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, np.iinfo(np.uint64).max, NUM_PERM, dtype=np.uint64, endpoint=True) | np.uint64(1)
    return a, rng.integers(0, np.iinfo(np.uint64).max, NUM_PERM, dtype=np.uint64, endpoint=True)


def signature(hashes: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The MinHash signature: per hash function, the minimum over the set (uint64 products wrap mod 2^64)."""
    return ((a[:, None] * hashes[None, :] + b[:, None]) >> np.uint64(32)).min(axis=1)


def lsh_rows(threshold: float) -> int:
    """Rows per band: the largest whose S-curve midpoint (1/bands)^(1/rows) stays 20% below the threshold."""
    fits = [r for r in (1, 2, 4, 8, 16, 32) if (r / NUM_PERM) ** (1 / r) <= 0.8 * threshold]
    return max(fits, default=1)


def similar_pairs(signatures: np.ndarray, threshold: float) -> dict[tuple[int, int], float]:
    """Pairs whose estimated Jaccard similarity reaches `threshold` (LSH candidates, then checked)."""
    rows = lsh_rows(threshold)
    candidates = set()
    for start in range(0, NUM_PERM, rows):  # one band: paragraphs agreeing on all its rows share a bucket
        _, bucket, counts = np.unique(signatures[:, start : start + rows], axis=0, return_inverse=True,
                                      return_counts=True)
        order = np.argsort(bucket.ravel(), kind="stable")
        starts = np.cumsum(counts) - counts
        for b in np.flatnonzero(counts > 1):
            candidates.update(combinations(sorted(order[starts[b] : starts[b] + counts[b]].tolist()), 2))
    estimates = {pair: float(np.mean(signatures[pair[0]] == signatures[pair[1]])) for pair in candidates}
    return {pair: s for pair, s in estimates.items() if s >= threshold}


def _components(n: int, pairs: dict[tuple[int, int], float]) -> list[list[int]]:
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        parent[find(i)] = find(j)
    groups = defaultdict(list)
    for i in range(n):
        groups[find(i)].append(i)
    return [sorted(g) for g in groups.values() if len(g) > 1]


def _newest(candidates: list[str], by_rel: dict[str, KbFile]) -> str:
    """Canonical home: the most recently changed file (most likely to be current), then the larger one."""
    return max(candidates, key=lambda rel: (by_rel[rel].last_change, by_rel[rel].n_words, rel))


def text_groups(files: list[KbFile], threshold: float) -> list[DuplicateGroup]:
    """Near-duplicate paragraphs, clustered, then merged per set of (file, section) so a copied section is one row."""
    units, sigs = [], []
    a, b = minhash_params()
    for f in files:
        for p in f.doc.paragraphs:
            n = len(words(p.text))
            if n >= MIN_WORDS:
                units.append(Unit(f.rel, p.start, p.end, p.section, n))
                sigs.append(signature(shingle_hashes(p.text), a, b))
    if not units:
        return []
    pairs = similar_pairs(np.stack(sigs), threshold)
    merged: dict[tuple, list[int]] = defaultdict(list)  # (file, section) set -> member units
    key_of = {}
    for comp in _components(len(units), pairs):
        key = tuple(sorted({(units[i].file, units[i].section) for i in comp}))
        merged[key] += comp
        key_of.update(dict.fromkeys(comp, key))
    sims = defaultdict(list)
    for (i, _), s in pairs.items():
        sims[key_of[i]].append(s)
    by_rel = {f.rel: f for f in files}
    groups = []
    for key, member_ids in merged.items():
        members = sorted((units[i] for i in member_ids), key=lambda u: (u.file, u.start))
        spans, counts = defaultdict(list), Counter()
        for u in members:
            spans[u.file].append((u.start, u.end))
            counts[u.file] += u.n_words
        topic = Counter(u.section for u in members).most_common(1)[0][0]
        groups.append(DuplicateGroup("near-duplicate text", topic, dict(spans), dict(counts),
                                     round(float(np.mean(sims[key])), 2), _newest(list(spans), by_rel)))
    return groups


def case_groups(files: list[KbFile]) -> list[DuplicateGroup]:
    """Files whose paths differ only in letter case: they collide on macOS/Windows and split one topic in two."""
    by_lower = defaultdict(list)
    for f in files:
        by_lower[f.rel.lower()].append(f)
    by_rel = {f.rel: f for f in files}
    return [
        DuplicateGroup("same name, different case", name, {f.rel: [(1, len(f.doc.lines))] for f in same},
                       {f.rel: f.n_words for f in same}, float("nan"), _newest([f.rel for f in same], by_rel))
        for name, same in sorted(by_lower.items()) if len(same) > 1
    ]


def find_duplicates(files: list[KbFile], threshold: float) -> list[DuplicateGroup]:
    """Every duplicate group: case-variant names first, then near-duplicate text ordered by topic."""
    return case_groups(files) + sorted(text_groups(files, threshold), key=lambda g: (g.topic, sorted(g.spans)))


def format_spans(spans: dict[str, list[tuple[int, int]]]) -> str:
    """`a.md:3-9, b.md:10-12` style file:line spans."""
    def lines(runs: list[tuple[int, int]]) -> str:
        return ",".join(f"{s}-{e}" if e > s else f"{s}" for s, e in runs)

    return ", ".join(f"{rel}:{lines(runs)}" for rel, runs in spans.items())


def duplicates_table(groups: list[DuplicateGroup]) -> pd.DataFrame:
    """One row per duplicate group with file:line spans and the suggested canonical home."""
    rows = [
        {"group": i, "kind": g.kind, "topic": g.topic, "files": len(g.spans), "spans": format_spans(g.spans),
         "similarity": g.similarity, "duplicated_words": sum(g.words_per_file.values()) - g.words_per_file[g.canonical],
         "canonical": g.canonical}
        for i, g in enumerate(groups, 1)
    ]
    columns = ["group", "kind", "topic", "files", "spans", "similarity", "duplicated_words", "canonical"]
    return pd.DataFrame(rows, columns=columns)
