"""prepare_dataset end to end on the demo folder: the output contract, untouched originals, incremental reruns."""

import json
import random
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from pistachio_nb.dataset import prepare_dataset
from pistachio_nb.errors import InputDataError, ParamsError
from pistachio_nb.files import read_jsonl, write_jsonl
from pistachio_testkit.demo_data import draw_scene

from .dataset_helpers import demo_master, demo_source, make_params, snapshot  # noqa: F401  (fixtures)

META_KEYS = {"file_name", "split", "width", "height", "original_width", "original_height", "crop_left", "crop_top", "source", "hash", "text"}


@pytest.fixture
def built(demo_source, tmp_path):
    p = make_params(tmp_path / "ws", demo_source)
    return p, prepare_dataset(p)


def test_output_contract(built, demo_source):
    p, ds = built
    root = p.ws.dataset
    meta = read_jsonl(root / "metadata.jsonl")
    assert meta == ds.metadata and len(meta) == 19
    for e in meta:
        assert set(e) == META_KEYS and e["text"] == ""
        image = root / e["file_name"]
        with Image.open(image) as im:
            assert im.format == "JPEG" and im.mode == "RGB" and im.size == (e["width"], e["height"])
        assert image.with_suffix(".txt").read_text() == ""
        prefix = "validation/" if e["split"] == "validation" else "train/10_pstchio character/"
        assert e["file_name"].startswith(prefix)
    m = pd.read_csv(root / "manifest.csv")
    assert sorted(m["path"]) == sorted(snapshot(demo_source))
    assert m["status"].value_counts().to_dict() == {"ok": 19, "duplicate": 4, "rejected": 3, "skipped": 1}
    assert m.loc[m["path"] == "scene_blurry.jpg", "flags"].item() == "blurry;no_face"  # a drawing: no face either
    assert json.loads((root / "metadata.jsonl.params.json").read_text())["params"]["trigger"] == "pstchio"


def test_split_never_straddles_a_cluster(built):
    _, ds = built
    m = ds.manifest[ds.manifest["cluster"].notna()]
    assert (m.groupby("cluster")["split"].nunique() == 1).all()
    assert {"train", "validation"} == set(m["split"])
    assert 3 <= (pd.DataFrame(ds.metadata)["split"] == "validation").sum() <= 5


def test_originals_bytes_and_mtimes_unchanged(demo_source, tmp_path):
    before = snapshot(demo_source)
    p = make_params(tmp_path / "ws", demo_source)
    prepare_dataset(p)
    prepare_dataset(make_params(tmp_path / "ws", demo_source, repeats=3, base_resolution=192))
    assert snapshot(demo_source) == before


def test_rerun_processes_only_the_new_file(built, demo_source):
    p, first = built
    assert first.counts["probed"] == first.counts["files"]
    again = prepare_dataset(p)
    assert again.counts["probed"] == 0 and again.counts["written"] == 0
    draw_scene(random.Random(99), (400, 300)).save(demo_source / "new_scene.jpg", quality=92)
    third = prepare_dataset(p)
    assert third.counts["probed"] == 1 and third.counts["reused"] == first.counts["files"]
    assert third.counts["written"] == 1 and third.counts["unchanged"] + third.counts["moved"] == 19
    assert any(e["source"] == "new_scene.jpg" for e in third.metadata)


def test_captions_and_later_fields_survive_reruns_and_folder_renames(built):
    p, ds = built
    root = p.ws.dataset
    captioned = [dict(e, text=f"pstchio character, photo {i}", caption_key="blip:v1") for i, e in enumerate(ds.metadata)]
    write_jsonl(root / "metadata.jsonl", captioned)
    for e in captioned:
        (root / e["file_name"]).with_suffix(".txt").write_text(e["text"])
    renamed = prepare_dataset(make_params(p.workspace, p.source_dir, repeats=4))
    assert renamed.counts["written"] == 0 and renamed.counts["moved"] == sum(e["split"] == "train" for e in captioned)
    assert not (root / "train" / "10_pstchio character").exists()
    by_hash = {e["hash"]: e["text"] for e in captioned}
    for e in renamed.metadata:
        assert e["text"] == by_hash[e["hash"]] != "" and e["caption_key"] == "blip:v1"
        assert (root / e["file_name"]).with_suffix(".txt").read_text() == e["text"]
        assert e["split"] == "validation" or e["file_name"].startswith("train/4_pstchio character/")


def test_removed_source_removes_its_output(built, demo_source):
    p, ds = built
    gone = next(e for e in ds.metadata if e["source"] == "scene_01.jpg")
    (demo_source / "scene_01.jpg").unlink()
    again = prepare_dataset(p)
    assert again.counts["removed"] == 1 and not (p.ws.dataset / gone["file_name"]).exists()
    assert not (p.ws.dataset / gone["file_name"]).with_suffix(".txt").exists()


def test_changed_probe_settings_reprobe_everything(built):
    p, ds = built
    again = prepare_dataset(make_params(p.workspace, p.source_dir, dedup_algorithm="dhash"))
    assert again.counts["probed"] == ds.counts["files"]


def test_process_pool_gives_the_same_result(demo_master, tmp_path):
    one = prepare_dataset(make_params(tmp_path / "a", demo_master, workers=1))
    two = prepare_dataset(make_params(tmp_path / "b", demo_master, workers=2))
    pd.testing.assert_frame_equal(one.manifest, two.manifest)
    assert one.metadata == two.metadata


def test_missing_empty_and_overlapping_sources(tmp_path):
    with pytest.raises(ParamsError, match="source_dir: .*no_such_folder is not an existing folder"):
        make_params(tmp_path / "ws", tmp_path / "no_such_folder")  # refused at validation, before any work
    with pytest.raises(InputDataError, match="no_such_folder"):  # and by the verb itself, for unchecked params
        prepare_dataset(make_params(tmp_path / "ws", tmp_path / "no_such_folder", check_paths=False))
    assert not (tmp_path / "no_such_folder").exists()  # a mistyped source_dir never becomes generated images
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputDataError, match="holds no files"):
        prepare_dataset(make_params(tmp_path / "ws", tmp_path / "empty"))
    with pytest.raises(ParamsError, match="overlap"):
        prepare_dataset(make_params(tmp_path, tmp_path / "dataset" / "src", check_paths=False))
    assert not (tmp_path / "dataset" / "src").exists()


@pytest.mark.parametrize("field, value", [("trigger", "two words"), ("base_resolution", 100), ("alpha_background", "not-a-colour"),
                                          ("dedup_algorithm", "md5"), ("validation_ratio", 0.9), ("min_side", 10_000)])
def test_bad_params_name_the_field(tmp_path, field, value):
    with pytest.raises(ParamsError, match=field):
        make_params(tmp_path, tmp_path, **{field: value})


def check_demo_outputs(ws: Path, rendered: str) -> None:
    """Checks of a demo run of 01_dataset (tests/test_notebooks.py CHECKS): contract files, clusters, split."""
    root = ws / "dataset"
    manifest = pd.read_csv(root / "manifest.csv")
    meta = read_jsonl(root / "metadata.jsonl")
    assert set(manifest["status"]) == {"ok", "duplicate", "rejected", "skipped"}
    assert len(meta) == (manifest["status"] == "ok").sum() and {e["split"] for e in meta} == {"train", "validation"}
    assert all((root / e["file_name"]).is_file() and (root / e["file_name"]).with_suffix(".txt").is_file() for e in meta)
    assert (manifest.dropna(subset=["cluster"]).groupby("cluster")["split"].nunique() == 1).all()
    faces = json.loads((root / "faces.json").read_text())
    assert set(faces) == {e["file_name"] for e in meta}  # the face check ran over every written image
    for shown in ("near-duplicate of", "truncated or corrupt", "validation", "image/png", "Faces found in", "framing"):
        assert shown in rendered, shown


def test_check_demo_outputs_accepts_a_build_and_rejects_a_broken_one(built):
    p, ds = built
    rendered = "near-duplicate of x; truncated or corrupt; validation; image/png; Faces found in; framing"
    check_demo_outputs(p.ws.root, rendered)
    (p.ws.dataset / ds.metadata[0]["file_name"]).unlink()
    with pytest.raises(AssertionError):
        check_demo_outputs(p.ws.root, rendered)


def test_a_dataset_stored_in_another_format_is_rewritten_not_renamed(built):
    p, ds = built
    root = p.ws.dataset
    old = [dict(e, file_name=e["file_name"].rsplit(".", 1)[0] + ".png", text="kept caption") for e in ds.metadata]
    for before, after in zip(ds.metadata, old):  # as an older version wrote it: PNG files, captioned
        with Image.open(root / before["file_name"]) as im:
            im.save(root / after["file_name"], "PNG")
        (root / before["file_name"]).unlink()
        (root / before["file_name"]).with_suffix(".txt").unlink()
        (root / after["file_name"]).with_suffix(".txt").write_text("kept caption")
    write_jsonl(root / "metadata.jsonl", old)
    again = prepare_dataset(p)
    assert again.counts["written"] == len(old) and again.counts["moved"] == 0 and again.counts["removed"] == len(old)
    assert not list(root.rglob("*.png"))
    for e in again.metadata:
        with Image.open(root / e["file_name"]) as im:
            assert im.format == "JPEG"
        assert e["text"] == "kept caption" == (root / e["file_name"]).with_suffix(".txt").read_text()
