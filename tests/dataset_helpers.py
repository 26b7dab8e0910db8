"""Helpers shared by the tests/test_dataset*.py files: a demo source folder and DatasetParams builders."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from pistachio_nb.dataset import DatasetParams
from pistachio_testkit.demo_data import make_demo_images

DEMO_VALUES = dict(
    trigger="pstchio", class_word="character", repeats=10, dedup_algorithm="phash",
    dedup_threshold=10, min_side=128, max_pixels=40_000_000, alpha_background="white", blur_threshold=50.0,
    validation_ratio=0.2, split_seed=0, base_resolution=128, workers=1, face_embedder="sface", face_anchors=[], crop="centre",
)


def make_params(workspace: Path, source: Path, check_paths: bool = True, **overrides) -> DatasetParams:
    """Demo-profile DatasetParams for a temp workspace and source folder."""
    values = {**DEMO_VALUES, "workspace": workspace, "source_dir": source, **overrides}
    return DatasetParams.validate_values(values, check_paths=check_paths)


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Relative path -> (sha256, mtime_ns) of every file below `folder`."""
    return {
        p.relative_to(folder).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="session")
def demo_master(tmp_path_factory) -> Path:
    """The demo source folder, generated once per session (never modified by tests)."""
    dest = tmp_path_factory.mktemp("demo_master") / "source"
    make_demo_images(dest)
    return dest


@pytest.fixture
def demo_source(demo_master, tmp_path) -> Path:
    """A private copy of the demo source folder that a test may add files to."""
    dest = tmp_path / "source"
    shutil.copytree(demo_master, dest)
    return dest

