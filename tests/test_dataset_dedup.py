"""Dedup: all-pairs search agrees with brute force, chains form one group split by distance to its kept images,
real copies cluster and scenes do not."""

import random

from pistachio_nb.dataset.dedup import close_pairs, cluster_hashes, hamming, mark_duplicates, rank_key

from .dataset_helpers import demo_master, demo_source  # noqa: F401  (fixtures)


def test_close_pairs_match_brute_force(monkeypatch):
    from pistachio_nb.dataset import dedup

    rng = random.Random(3)
    values = [rng.getrandbits(64) for _ in range(300)]
    values += [v ^ (1 << rng.randrange(64)) ^ (1 << 63) for v in values[:50]]  # close neighbours, top bit set
    monkeypatch.setattr(dedup, "BLOCK", 7 * len(values))  # several blocks, so block edges are exercised
    for radius in (0, 3, 10, 24):
        expected = {(i, j) for i in range(len(values)) for j in range(i + 1, len(values)) if hamming(values[i], values[j]) <= radius}
        assert set(close_pairs(values, radius)) == expected


def test_chains_join_into_one_cluster():
    a = 0
    b = a ^ 0b111  # 3 bits from a
    c = b ^ (0b111 << 8)  # 3 bits from b, 6 from a
    far = (1 << 64) - 1
    labels = cluster_hashes([a, far, c, b], radius=3)
    assert labels[0] == labels[2] == labels[3] != labels[1]


def test_rank_prefers_size_then_sharpness():
    rows = [
        {"path": "b.jpg", "width": 100, "height": 100, "blur": 900.0},
        {"path": "a.jpg", "width": 200, "height": 100, "blur": 10.0},
        {"path": "c.jpg", "width": 200, "height": 100, "blur": 50.0},
    ]
    assert min(rows, key=rank_key)["path"] == "c.jpg"


def _row(path: str, phash: int, width: int = 100) -> dict:
    return {"path": path, "status": "ok", "phash": f"{phash:016x}", "width": width, "height": 100, "blur": 100.0}


def test_a_chain_is_split_by_distance_to_the_kept_image_and_flagged():
    a, b = 0, 0b111 << 4  # b: 3 bits from a
    c = b ^ (0b111 << 20)  # c: 3 bits from b, 6 from a
    rows = [_row("a.jpg", a, width=300), _row("b.jpg", b, width=200), _row("c.jpg", c), _row("far.jpg", (1 << 64) - 1)]
    mark_duplicates(rows, threshold=3)
    by = {r["path"]: r for r in rows}
    assert by["b.jpg"]["status"] == "duplicate" and by["b.jpg"]["duplicate_of"] == "a.jpg"
    assert by["c.jpg"]["status"] == "ok" and by["c.jpg"]["kept"]  # 6 bits from a: not silently dropped as its copy
    assert by["a.jpg"]["group"] == by["c.jpg"]["group"] != by["far.jpg"]["group"]  # one group: one side of the split
    assert by["a.jpg"]["cluster"] != by["c.jpg"]["cluster"]
    assert by["a.jpg"]["chained"] and by["c.jpg"]["chained"] and not by["far.jpg"]["chained"]


def test_every_duplicate_is_within_the_threshold_of_its_kept_image():
    rng = random.Random(5)
    values = [0]
    for _ in range(60):  # a random walk: long chains of near neighbours
        values.append(values[-1] ^ (1 << rng.randrange(64)) ^ (1 << rng.randrange(64)))
    rows = [_row(f"{i:02d}.jpg", v, width=100 + rng.randrange(50)) for i, v in enumerate(values)]
    mark_duplicates(rows, threshold=6)
    by = {r["path"]: r for r in rows}
    dups = [r for r in rows if r["status"] == "duplicate"]
    assert dups and len({r["group"] for r in rows}) < len({r["cluster"] for r in rows})
    for r in dups:
        assert hamming(int(r["phash"], 16), int(by[r["duplicate_of"]]["phash"], 16)) <= 6
        assert by[r["duplicate_of"]]["kept"] and by[r["duplicate_of"]]["cluster"] == r["cluster"]


def test_demo_copies_cluster_and_distinct_scenes_do_not(demo_source, tmp_path):
    from pistachio_nb.dataset import prepare_dataset

    from .dataset_helpers import make_params

    m = prepare_dataset(make_params(tmp_path / "ws", demo_source)).manifest
    clusters = m[m["cluster_size"] > 1].groupby("cluster")["path"].apply(frozenset)
    assert set(clusters) == {
        frozenset({"scene_00.jpg", "copies/scene_00_resized.jpg", "copies/scene_00_reencoded.jpg", "copies/scene_00_brighter.png"}),
        frozenset({"scene_03.png", "copies/scene_03_small.webp"}),
    }
    assert (m.loc[m["status"] == "duplicate", "kept"] == False).all()  # noqa: E712
    assert m.loc[m["status"] == "ok", "cluster"].is_unique


def test_a_copy_joins_its_nearest_kept_image_not_the_first_look_alike():
    original = 0
    copy = original ^ 0b11  # 2 bits from its original
    look_alike = copy ^ (0xFF << 8)  # 8 bits from the copy, 10 from the original: ranks first (biggest)
    rows = [_row("look_alike.jpg", look_alike, width=400), _row("original.jpg", original, width=300), _row("copy.jpg", copy, width=150)]
    mark_duplicates(rows, threshold=8)
    by = {r["path"]: r for r in rows}
    assert by["look_alike.jpg"]["kept"] and by["original.jpg"]["kept"]
    assert by["copy.jpg"]["duplicate_of"] == "original.jpg"
