"""Notebook views of a demo build: tables have the expected rows, figures draw the clusters and the split."""

import pytest

from pistachio_nb.dataset import prepare_dataset, report

from .dataset_helpers import demo_master, make_params  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def ds(demo_master, tmp_path_factory):
    return prepare_dataset(make_params(tmp_path_factory.mktemp("report") / "ws", demo_master))


def test_tables(ds):
    assert report.status_summary(ds).set_index("status")["files"].to_dict() == {"duplicate": 4, "ok": 19, "rejected": 3, "skipped": 1}
    assert set(report.problems(ds)["status"]) == {"rejected", "skipped"}
    dup = report.duplicate_table(ds)
    assert len(dup) == 6 and (dup.groupby("cluster")["status"].apply(lambda s: (s == "ok").sum()) == 1).all()
    quality = report.quality_table(ds)
    assert len(quality) == 19 and quality.iloc[0]["path"] == "scene_blurry.jpg"
    split = report.split_table(ds)
    assert split.loc["total", "total"] == 19 and split.loc["total", "validation"] >= 1
    assert list(report.metadata_table(ds, 3).columns[:2]) == ["file_name", "split"]


def test_figures(ds):
    grid = report.cluster_grid(ds)
    assert len([ax for ax in grid.axes if ax.images]) == 6  # 4 + 2 cluster members
    assert len(report.quality_plots(ds, 50.0, 128).axes) == 2
    assert len([ax for ax in report.dataset_grid(ds, per_split=3).axes if ax.images]) == 6


def test_thumbnail_is_upright_and_small(demo_master):
    thumb = report.thumbnail(demo_master / "formats" / "phone_rotated.jpg", side=64)
    assert thumb.mode == "RGB" and thumb.size == (64, 48)
