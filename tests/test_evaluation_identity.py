"""The same-person threshold checked on real photos: Grace Hopper and the cameraman are two people, their
crops, mirror images, JPEG re-encodes, rotations and downscales the same person (OpenCV YuNet + SFace)."""

import numpy as np
import pandas as pd
import pytest

from pistachio_nb.evaluation.faces import SFaceEmbedder
from pistachio_nb.evaluation.identity_check import DIFFERENT, SAME, check_identity_threshold, pass_share

SFACE_THRESHOLD = 0.363  # SFace's published same-person cosine (OpenCV's face_recognition_sface)


@pytest.fixture(scope="module")
def check():
    return check_identity_threshold(SFaceEmbedder(), SFACE_THRESHOLD)


def test_real_photos_separate_same_from_different_people_at_the_threshold(check):
    assert check.faces_found == check.photos == 14  # 2 people x 7 variants, every face found
    same, diff = (check.pairs.loc[check.pairs["kind"] == k, "cosine"] for k in (SAME, DIFFERENT))
    assert len(same) == 2 * 21 and len(diff) == 7 * 7
    assert same.min() > 0.6 and diff.max() < 0.3 and same.median() - diff.median() > 0.6
    assert check.separated
    table = check.table
    assert table.loc[SAME, "share ≥ threshold"] == 1.0 and table.loc[DIFFERENT, "share ≥ threshold"] == 0.0
    assert "separates them completely" in check.note and f"{table.loc[SAME, 'min']:.3f}" in check.note


def test_a_threshold_that_misses_the_real_photos_says_so():
    bad = check_identity_threshold(SFaceEmbedder(), 0.05)  # below some different-people pairs
    assert not bad.separated and "does NOT separate" in bad.note
    assert 0 < bad.table.loc[DIFFERENT, "share ≥ threshold"] < 1


def test_histogram_shows_both_kinds_and_the_threshold(check):
    ax = check.figure().axes[0]
    assert len(ax.patches) == 2 * 40  # two histograms of 40 bins
    assert any(np.allclose(line.get_xdata(), SFACE_THRESHOLD) for line in ax.lines)


def test_pass_share_counts_a_missing_face_as_not_passing():
    passed = pass_share(pd.Series([0.9, 0.2, np.nan, SFACE_THRESHOLD]), SFACE_THRESHOLD)
    assert passed.tolist() == [True, False, False, True]
    assert passed.mean() == 0.5  # the share of images, not of faces: a broken face counts against the checkpoint
