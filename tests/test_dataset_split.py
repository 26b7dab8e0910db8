"""Split: deterministic, about the ratio, at least one validation cluster, never all, stable under additions."""

import pytest

from pistachio_nb.dataset.split import validation_clusters

KEYS = [f"{i:064x}" for i in range(40)]


def test_deterministic_and_seed_dependent():
    assert validation_clusters(KEYS, 0.2, 0) == validation_clusters(list(reversed(KEYS)), 0.2, 0)
    assert validation_clusters(KEYS, 0.2, 0) != validation_clusters(KEYS, 0.2, 1)


@pytest.mark.parametrize("n, ratio, expected", [(40, 0.2, 8), (40, 0.1, 4), (5, 0.05, 1), (2, 0.5, 1), (1, 0.5, 0), (10, 0.0, 0)])
def test_counts(n, ratio, expected):
    assert len(validation_clusters(KEYS[:n], ratio, 0)) == expected


def test_adding_clusters_keeps_most_earlier_choices():
    before = validation_clusters(KEYS[:30], 0.2, 0)
    after = validation_clusters(KEYS[:31], 0.2, 0)
    assert len(before & after) >= len(before) - 1
