"""The dataset stays one person, on real photos: Grace Hopper's variants are the character, the cameraman is
someone else, a side-by-side of both is a group photo, a drawing has no face."""

import json
import random

import pytest

from pistachio_nb.dataset import prepare_dataset, report
from pistachio_nb.dataset.buckets import face_fit, fit_bucket, sdxl_buckets
from pistachio_nb.dataset.identity import detect_faces, face_model, framing, head_pose
from pistachio_nb.errors import ModelLoadError, ParamsError
from pistachio_nb.evaluation.identity_check import photo_variants, real_people
from pistachio_testkit.demo_data import draw_scene

from .dataset_helpers import make_params
from .face_photos import side_by_side


@pytest.fixture(scope="module")
def people():
    return real_people()


@pytest.fixture(scope="module")
def source(tmp_path_factory, people):
    """Five distinct shots of Hopper (crops, flips, rotations), the cameraman, a group photo and a drawing."""
    folder = tmp_path_factory.mktemp("one-person") / "source"
    folder.mkdir()
    variants = photo_variants({"hopper": people["hopper"]})
    for row in variants.itertuples():
        row.image.resize((row.image.width * 2, row.image.height * 2)).save(folder / f"hopper_{row.variant}.png")
    people["cameraman"].resize((768, 768)).save(folder / "stranger.png")
    side_by_side(people["hopper"], people["cameraman"], height=600).save(folder / "group.png")
    draw_scene(random.Random(3), (512, 512)).save(folder / "drawing.png")  # YuNet sees a 0.64 "face" in it: below MIN_SCORE
    return folder


@pytest.fixture(scope="module")
def built(source, tmp_path_factory):
    ws = tmp_path_factory.mktemp("ws")
    return prepare_dataset(make_params(ws, source, dedup_threshold=0, min_side=64)), ws


def rows(result):
    return result.manifest.set_index("path")


def test_the_planted_stranger_is_rejected_with_the_cosine_as_reason(built):
    result, _ = built
    m = rows(result)
    assert m.loc["stranger.png", "status"] == "rejected"
    assert m.loc["stranger.png", "reason"].startswith("another person: face cosine")
    assert m.loc["stranger.png", "identity"] < 0.363 <= m.loc[[p for p in m.index if p.startswith("hopper_")], "identity"].min()
    assert (m.loc[[p for p in m.index if p.startswith("hopper_")], "status"] != "rejected").all()
    assert "largest group of one face" in result.identity.note and "rejected as another person: 1" in result.identity.note


def test_a_group_photo_and_a_drawing_are_flagged_not_dropped(built):
    result, ws = built
    m = rows(result)
    assert m.loc["group.png", "faces"] == 2 and "several_faces" in m.loc["group.png", "flags"] and m.loc["group.png", "kept"]
    assert m.loc["group.png", "identity"] >= 0.363  # she is in it
    assert m.loc["drawing.png", "faces"] == 0 and "no_face" in m.loc["drawing.png", "flags"] and m.loc["drawing.png", "kept"]
    table = report.face_table(result)
    assert set(table["path"]) == {"stranger.png", "group.png", "drawing.png"} and table["path"].iloc[0] == "stranger.png"
    grid = report.face_grid(result)
    assert [ax.get_ylabel() for ax in grid.axes if ax.get_ylabel()] == ["another person", "several faces", "no face"]
    faces = json.loads((ws / "dataset" / "faces.json").read_text())
    group = next(v for k, v in faces.items() if "group" in k or len(v["boxes"]) == 2)
    assert len(group["boxes"]) == 2 and all(0 <= x <= 1 for box in group["boxes"] for x in box[:2])
    assert len(faces) == len(result.metadata)  # one entry per written image, the stranger not among them


def test_coverage_counts_every_kept_face_by_pose_and_framing(built):
    result, _ = built
    table = report.coverage_table(result)
    kept_with_face = result.manifest[result.manifest["kept"].astype(bool) & (result.manifest["faces"] > 0)]
    assert table.to_numpy().sum() == len(kept_with_face) and list(table.index) == ["frontal", "three-quarter", "profile"]
    assert table.loc["frontal"].sum() >= 1  # Hopper faces the camera
    assert len(report.coverage_plot(result).axes[0].patches) == 9


def test_anchors_decide_who_the_character_is(source, tmp_path):
    result = prepare_dataset(make_params(tmp_path / "ws", source, dedup_threshold=0, min_side=64, face_anchors=["stranger.png"]))
    m = rows(result)
    assert m.loc["stranger.png", "status"] != "rejected"
    hopper = m.loc[[p for p in m.index if p.startswith("hopper_")], "status"]
    assert hopper.isin(["rejected", "duplicate"]).all() and (hopper == "rejected").sum() == 5  # every distinct shot of her
    assert "anchor photo" in result.identity.note


def test_a_missing_anchor_is_named_before_any_work(source, tmp_path):
    with pytest.raises(ParamsError, match="face_anchors: .*nobody.jpg not found"):
        prepare_dataset(make_params(tmp_path / "ws", source, face_anchors=["nobody.jpg"]))
    assert not (tmp_path / "ws" / "dataset" / "manifest.csv").exists()


def test_face_checks_can_be_turned_off_for_a_character_that_is_not_a_person(source, tmp_path):
    result = prepare_dataset(make_params(tmp_path / "ws", source, dedup_threshold=0, min_side=64, face_embedder="none"))
    assert (result.manifest["status"] != "rejected").all() and "off" in result.identity.note


def test_faces_found_in_worker_processes_match_the_ones_found_here(source, tmp_path):
    """sface runs a process per core; each worker loads its own model and must find the same faces."""
    paths = {f.name: f for f in sorted(source.iterdir())}
    here = detect_faces(face_model("sface"), paths, tmp_path / "one", "sface", 1)
    spread = detect_faces(face_model("sface"), paths, tmp_path / "two", "sface", 2)
    assert {k: len(v) for k, v in spread.items()} == {k: len(v) for k, v in here.items()}
    assert sum(map(len, here.values())) >= len(paths) - 1  # every photo but the drawing has a face
    for name, faces in here.items():
        for a, b in zip(faces, spread[name]):
            assert a["box"] == pytest.approx(b["box"], abs=1e-6) and a["vector"] == pytest.approx(b["vector"], abs=1e-5)


def test_face_crop_keeps_the_face_in_frame():
    fit = fit_bucket(1000, 2000, sdxl_buckets(1024))  # a tall photo into the tallest bucket keeps all; a square one:
    square = fit_bucket(2000, 1000, [(1024, 1024)])
    moved = face_fit(square, (0.05, 0.4, 0.1, 0.2))  # a face at the left edge
    assert moved.left == 0 < square.left and moved.top == square.top == 0
    right = face_fit(square, (0.85, 0.4, 0.1, 0.2))
    assert right.left == square.resized[0] - 1024  # clamped to the picture
    assert face_fit(fit, (0.45, 0.45, 0.1, 0.1)).bucket == fit.bucket


def test_pose_and_framing_from_landmarks_and_box():
    eyes = [[0.4, 0.4], [0.6, 0.4]]
    assert head_pose(eyes + [[0.5, 0.5]]) == "frontal"
    assert head_pose(eyes + [[0.56, 0.5]]) == "three-quarter"
    assert head_pose(eyes + [[0.68, 0.5]]) == "profile"
    assert [framing(b) for b in ((0, 0, 0.3, 0.5), (0, 0, 0.1, 0.15), (0, 0, 0.02, 0.05))] == ["close-up", "medium", "full body"]


def test_a_face_model_that_cannot_load_stops_before_any_image_is_read(source, tmp_path):
    with pytest.raises(ModelLoadError, match="face_embedder 'arcface:antelopev2'"):
        prepare_dataset(make_params(tmp_path / "ws", source, face_embedder="arcface:antelopev2"))  # no insightface here
    assert not any((tmp_path / "ws" / "dataset").glob("*"))  # no probe cache, manifest or image written
