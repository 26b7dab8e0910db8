"""Dedup: BK-tree agrees with brute force, chains form one cluster, real copies cluster and scenes do not."""

import random

from pistachio_nb.dataset.dedup import best_member, close_pairs, cluster_hashes, hamming

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


def test_best_member_prefers_size_then_sharpness():
    rows = [
        {"path": "b.jpg", "width": 100, "height": 100, "blur": 900.0},
        {"path": "a.jpg", "width": 200, "height": 100, "blur": 10.0},
        {"path": "c.jpg", "width": 200, "height": 100, "blur": 50.0},
    ]
    assert best_member(rows)["path"] == "c.jpg"


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
