"""caption_dataset end to end on a small dataset folder of 01_dataset's shape, with the tiny Florence-2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pistachio_nb.captions import caption_dataset, captioners
from pistachio_nb.captions.review import find_replace, review_grid, sample_grid
from pistachio_nb.captions.store import BACKUPS
from pistachio_nb.errors import InputDataError, ModelLoadError
from pistachio_nb.captions import CaptioningParams

TRIGGER = "pstchio"


def make_dataset(workspace: Path, n: int = 5) -> Path:
    """metadata.jsonl + kohya folders like 01_dataset writes: PNGs with empty `.txt` sidecars."""
    root = workspace / "dataset"
    rows = []
    for i in range(n):
        split = "validation" if i == n - 1 else "train"
        name = f"validation/img{i}.png" if split == "validation" else f"train/10_{TRIGGER} woman/img{i}.png"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        pixels = np.random.default_rng(i).integers(0, 255, (40 + 8 * i, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / name)
        (root / name).with_suffix(".txt").write_text("")
        rows.append({"file_name": name, "split": split, "width": 32, "height": 40 + 8 * i, "text": "", "source": f"s{i}.jpg", "hash": f"h{i}"})
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def params(workspace: Path, **over) -> CaptioningParams:
    values = dict(
        workspace=workspace, trigger=TRIGGER, class_word="woman", captioner="florence2", caption_model="tiny:captioner",
        task_prompt="<DETAILED_CAPTION>", batch_size=2, max_caption_length=12, num_beams=1,
        template="a photo of a {class_word}, {orientation} shot", fallback="none", strip_phrases=["red hair"],
        replacements={"girl": "woman"}, overwrite=False, base_model="tiny:sdxl", preview_count=3,
        find_text="", replace_text="", apply_find_replace=False,
    )  # fmt: skip
    return CaptioningParams.validate_values({**values, **over})


def on_disk(root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(sidecar text by file_name, metadata text by file_name)."""
    rows = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]
    return {r["file_name"]: (root / r["file_name"]).with_suffix(".txt").read_text() for r in rows}, {r["file_name"]: r["text"] for r in rows}


@pytest.fixture
def dataset(tmp_path):
    return tmp_path, make_dataset(tmp_path)


def test_every_image_captioned_trigger_first_and_sidecars_match_metadata(dataset):
    ws, root = dataset
    result = caption_dataset(params(ws))
    sidecars, meta = on_disk(root)
    assert sidecars == meta and len(meta) == 5
    assert all(t.startswith(f"{TRIGGER}, ") and len(t) > len(TRIGGER) + 5 for t in meta.values())
    assert set(result.table["status"]) == {"captioned"}
    assert result.lint["trigger_first"].all()
    assert (root / "captions.csv").exists() and (root / "caption_lint.csv.params.json").exists()
    assert caption_dataset(params(ws)).table["status"].eq("up to date").all()  # a rerun does nothing


def test_existing_captions_kept_without_overwrite_and_backed_up_with_it(dataset):
    ws, root = dataset
    mine = root / "train" / f"10_{TRIGGER} woman" / "img0.txt"
    mine.write_text("pstchio, my hand-written caption")
    first = caption_dataset(params(ws, captioner="template")).table.set_index("file_name")
    assert mine.read_text() == "pstchio, my hand-written caption"
    assert first.loc[f"train/10_{TRIGGER} woman/img0.png", "status"] == "kept"
    assert on_disk(root)[1][f"train/10_{TRIGGER} woman/img0.png"] == "pstchio, my hand-written caption"  # sidecar wins

    second = caption_dataset(params(ws, overwrite=True)).table.set_index("file_name")
    assert second["status"].eq("captioned").all()
    assert mine.read_text() != "pstchio, my hand-written caption"
    backups = sorted((root / BACKUPS).rglob("*.txt"))
    assert len(backups) == 5  # every replaced caption, in one folder for this run
    assert (Path(second.loc[f"train/10_{TRIGGER} woman/img0.png", "backup"])).read_text() == "pstchio, my hand-written caption"
    sidecars, meta = on_disk(root)
    assert sidecars == meta


@pytest.mark.parametrize("overwrite", [False, True])
def test_interrupted_run_resumes_where_it_stopped(dataset, monkeypatch, overwrite):
    ws, root = dataset
    if overwrite:
        caption_dataset(params(ws, captioner="template"))
    real, calls, fail_at = captioners.ModelCaptioner.caption, [], [2]

    def flaky(self, images):
        calls.append(len(images))
        if len(calls) in fail_at:
            raise RuntimeError("pod preempted")
        return real(self, images)

    monkeypatch.setattr(captioners.ModelCaptioner, "caption", flaky)
    with pytest.raises(RuntimeError, match="pod preempted"):
        caption_dataset(params(ws, overwrite=overwrite))
    sidecars, meta = on_disk(root)
    assert sidecars == meta  # consistent even after the interruption
    calls.clear(), fail_at.clear()
    result = caption_dataset(params(ws, overwrite=overwrite))
    assert calls == [2, 1]  # the first batch (2 images) was not captioned again
    assert result.table["status"].value_counts().to_dict() == {"captioned": 3, "up to date": 2}
    if overwrite:  # template captions backed up once each, across the two runs
        assert len(list((root / BACKUPS).rglob("*.txt"))) == 5


def test_missing_model_is_a_clear_error_and_writes_nothing(dataset, tmp_path):
    ws, root = dataset
    (tmp_path / "empty-model").mkdir()
    for ref, message in ((str(tmp_path / "nope"), "does not exist"), (str(tmp_path / "empty-model"), "could not load the captioner")):
        with pytest.raises(ModelLoadError, match=message) as err:
            caption_dataset(params(ws, caption_model=ref))
        assert "fallback: template" in str(err.value)
    assert set(on_disk(root)[0].values()) == {""}


def test_template_fallback_only_when_asked_and_said_loudly(dataset, tmp_path):
    ws, root = dataset
    result = caption_dataset(params(ws, caption_model=str(tmp_path / "nope"), fallback="template"))
    assert result.fallback_reason.startswith("model path")
    assert result.table["source"].str.contains("FALLBACK").all()
    assert all(t.startswith(f"{TRIGGER}, a photo of a woman, ") for t in on_disk(root)[1].values())
    # once the model loads, the placeholders are replaced even without overwrite (and backed up)
    again = caption_dataset(params(ws))
    assert again.table["status"].eq("captioned").all() and not again.table["source"].str.contains("FALLBACK").any()
    assert len(list((root / BACKUPS).rglob("*.txt"))) == 5


def test_wrong_family_for_the_model_is_refused(dataset):
    ws, _ = dataset
    with pytest.raises(ModelLoadError, match="is a 'florence2' model, but captioner is 'blip'"):
        caption_dataset(params(ws, captioner="blip", task_prompt=""))


def test_missing_dataset_points_at_01(tmp_path):
    with pytest.raises(InputDataError, match="metadata.jsonl is missing.*\n.*run 01_dataset"):
        caption_dataset(params(tmp_path))


def test_missing_image_is_named(dataset):
    ws, root = dataset
    (root / "validation" / "img4.png").unlink()
    with pytest.raises(InputDataError, match="validation/img4.png"):
        caption_dataset(params(ws, captioner="template"))


def test_find_replace_previews_then_applies_with_backup(dataset):
    ws, root = dataset
    caption_dataset(params(ws, captioner="template"))
    preview = find_replace(root, "photo", "close-up photo")
    assert len(preview) == 5 and preview["after"].str.contains("close-up photo").all()
    assert not any("close-up" in t for t in on_disk(root)[0].values())  # preview wrote nothing
    find_replace(root, "photo", "close-up photo", apply=True)
    sidecars, meta = on_disk(root)
    assert sidecars == meta and all("a close-up photo of" in t for t in meta.values())
    assert len(list((root / BACKUPS).rglob("*.txt"))) == 5
    assert find_replace(root, "", "x").empty


def test_review_grid_saves_only_on_click(dataset):
    ws, root = dataset
    caption_dataset(params(ws, captioner="template"))
    before = on_disk(root)
    grid = review_grid(root, page_size=2)
    assert on_disk(root) == before  # building the widget (as a headless run does) writes nothing
    card = grid.children[1].children[0]
    area, button = card.children[1].children[1], card.children[1].children[2]
    original = before[1][f"train/10_{TRIGGER} woman/img0.png"]
    for text in ("pstchio, first edit", "pstchio, edited in review "):
        area.value = text
        button.click()
    sidecars, meta = on_disk(root)
    assert sidecars == meta and meta[f"train/10_{TRIGGER} woman/img0.png"] == "pstchio, edited in review"
    backups = sorted(p.read_text() for p in (root / BACKUPS).rglob("img0.txt"))
    assert backups == sorted([original, "pstchio, first edit"])  # each save keeps what it replaced
    grid.children[0].value = 2  # the last page holds the fifth image
    assert len(grid.children[1].children) == 1


def test_sample_grid_shows_images_with_captions(dataset):
    ws, root = dataset
    result = caption_dataset(params(ws, captioner="template"))
    rows = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]
    grid = sample_grid(root, rows, 3)
    assert [title for _, title, _ in grid.items] == [Path(r["file_name"]).name for r in rows[:3]]
    assert grid.items[0][2] == result.table["text"][0]  # the whole caption, not a wrapped or cut title
    assert grid._repr_html_().count("<img") == 3


def check_demo_outputs(ws: Path, rendered: str) -> None:
    """Checks of a demo run's 02_captioning outputs (for tests/test_notebooks.py CHECKS)."""
    import pandas as pd

    root = ws / "dataset"
    sidecars, meta = on_disk(root)
    assert meta and sidecars == meta
    assert all(t.startswith(f"{TRIGGER}, ") for t in meta.values())  # every image captioned, trigger first
    table = pd.read_csv(root / "captions.csv")
    assert set(table["status"]) <= {"captioned", "up to date", "kept"} and len(table) == len(meta)
    lint = pd.read_csv(root / "caption_lint.csv")
    assert lint["trigger_first"].all() and (lint["window"] == 77).all()
    assert "duplicate caption" in rendered  # the tiny random captioner repeats itself, and the lint says so
    assert "pistachio-caption-grid" in rendered and "data:image/jpeg;base64" in rendered  # images beside their captions
