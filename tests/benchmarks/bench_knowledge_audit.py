"""Benchmark the knowledge audit on a synthetic knowledge base: run time, and recall/precision of the
MinHash+LSH duplicate finder on planted edited copies; precision/recall of the conflicting-rules finder on
the demo knowledge base's planted conflicts and its false pairs on clean text. Prints its figures; not collected by pytest."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from pistachio_nb.knowledge.conflicts import conflicts_table, find_rules
from pistachio_nb.knowledge.duplication import find_duplicates, shingle_hashes
from pistachio_nb.knowledge.inventory import load_kb
from pistachio_testkit.demo_kb import write_demo_kb
from pistachio_testkit.demo_kb_text import PLANTED_CONFLICTS

N_FILES, PARAGRAPHS, WORDS, N_COPIES = 300, 20, 60, 200
THRESHOLD = 0.5


def paragraph(rng: np.random.Generator, vocab: list[str]) -> list[str]:
    return list(rng.choice(vocab, WORDS))


def edit(rng: np.random.Generator, words: list[str], vocab: list[str], n_edits: int) -> list[str]:
    """Replace `n_edits` random words: the drift a pasted rule accumulates."""
    out = list(words)
    for i in rng.choice(len(out), n_edits, replace=False):
        out[i] = str(rng.choice(vocab))
    return out


def build(root: Path, rng: np.random.Generator) -> dict[frozenset[str], float]:
    """Write the files; return each planted pair ({file:line, file:line}) with its exact shingle Jaccard."""
    vocab = [f"w{i}" for i in range(5000)]
    texts = [[paragraph(rng, vocab) for _ in range(PARAGRAPHS)] for _ in range(N_FILES)]
    slots = rng.choice(N_FILES * PARAGRAPHS, 2 * N_COPIES, replace=False)  # distinct: no copy of a copy
    planted = {}
    for src, dst in slots.reshape(-1, 2):
        (fs, ps), (fd, pd_) = divmod(int(src), PARAGRAPHS), divmod(int(dst), PARAGRAPHS)
        texts[fd][pd_] = edit(rng, texts[fs][ps], vocab, n_edits=3)
        a, b = (set(shingle_hashes(" ".join(t)).tolist()) for t in (texts[fs][ps], texts[fd][pd_]))
        planted[frozenset({f"f{fs:03d}.md:{3 + 2 * ps}", f"f{fd:03d}.md:{3 + 2 * pd_}"})] = len(a & b) / len(a | b)
    for i, paras in enumerate(texts):
        (root / f"f{i:03d}.md").write_text(f"# File {i}\n\n" + "\n\n".join(" ".join(p) for p in paras) + "\n")
    return planted


def main() -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        planted = build(root, rng)
        t0 = time.perf_counter()
        files = load_kb(root, [])
        t1 = time.perf_counter()
        groups = find_duplicates(files, THRESHOLD)
        t2 = time.perf_counter()
    found = {frozenset(f"{rel}:{runs[0][0]}" for rel, runs in g.spans.items()) for g in groups}
    above = {pair for pair, jac in planted.items() if jac >= THRESHOLD}
    paragraphs = sum(len(f.doc.paragraphs) for f in files)
    print(f"{N_FILES} files, {paragraphs} paragraphs of {WORDS} words, {len(planted)} planted copies (3 words edited)")
    print(f"load+parse: {t1 - t0:.2f} s; MinHash+LSH+clustering: {t2 - t1:.2f} s")
    jaccards = list(planted.values())
    print(f"exact Jaccard of planted pairs: min {min(jaccards):.2f}, median {np.median(jaccards):.2f}")
    print(f"found: {len(found & set(planted))}/{len(planted)} planted pairs, {len(found & above)}/{len(above)} "
          f"of those with exact Jaccard >= {THRESHOLD}; groups that are not a planted pair: {len(found - set(planted))}")


def where(files, rel: str, snippet: str) -> str:
    return next(f"{rel}:{n}" for f in files if f.rel == rel for n, line in enumerate(f.doc.lines, 1) if snippet in line)


def conflicts() -> None:
    """Precision and recall on the demo's planted pairs; pairs found in clean text (all of them false)."""
    with tempfile.TemporaryDirectory() as tmp:
        files = load_kb(write_demo_kb(Path(tmp) / "kb"), [])
    planted = {frozenset({where(files, *a), where(files, *b)}) for a, b in PLANTED_CONFLICTS}
    table = conflicts_table(files)
    found = {frozenset(pair) for pair in zip(table["where_a"], table["where_b"])}
    hits = len(found & planted)
    print(f"conflicts on the demo KB: {len(find_rules(files))} rules, {len(found)} pairs listed, {len(planted)} planted; "
          f"precision {hits / max(1, len(found)):.2f}, recall {hits / len(planted):.2f}")
    clean = [f for f in files if f.rel == "kb/captioning.md"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for nb in Path("notebooks").glob("*.ipynb"):
            cells = json.loads(nb.read_text())["cells"]
            (root / f"{nb.stem}.md").write_text("\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown"))
        for page in Path("skills").glob("*.md"):
            (root / f"skill_{page.name}").write_text(page.read_text())
        clean += load_kb(root, [])
    print(f"conflicts on clean text ({len(clean)} files: captioning guide, notebook prose, skills): "
          f"{len(find_rules(clean))} rules, {len(conflicts_table(clean))} pairs listed (every one would be false)")


if __name__ == "__main__":
    main()
    conflicts()
