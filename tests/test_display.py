"""The display layer: full text, relative paths, picked columns, wide tables split, params that differ, caption grids."""

from pathlib import Path

import pandas as pd
from PIL import Image

from pistachio_nb.dataset import DatasetParams
from pistachio_nb.display import caption_grid, cell_defaults, facts, params_table, relative, show
from pistachio_nb.paths import repo_root

LONG = "a caption a reader needs in full, " * 6


def test_full_text_and_relative_paths():
    root = repo_root()
    frame = pd.DataFrame({"file": [root / "outputs" / "demo" / "a.png"], "caption": [LONG],
                          "note": [f"written to {root}/outputs/demo/x.csv"], "n": [3]})
    table = show(frame)
    page, text = table._repr_html_(), repr(table)
    assert LONG.strip() in page and LONG.strip() in text and "..." not in page
    assert "outputs/demo/a.png" in page and str(root) not in page and "written to outputs/demo/x.csv" in page
    assert relative(Path("/elsewhere/b.png"), root) == "/elsewhere/b.png" and relative(7, root) == 7


def test_paths_relative_to_the_workspace_first(tmp_path):
    ws = tmp_path / "ws"
    frame = pd.DataFrame({"file": [ws / "setup" / "drift.csv", repo_root() / "params" / "demo.yaml"],
                          "note": [f"see {ws}/setup/health.csv", "plain"]})
    shown = show(frame, root=ws).frame
    assert list(shown["file"]) == ["setup/drift.csv", "params/demo.yaml"] and shown["note"][0] == "see setup/health.csv"


def test_facts_table_drops_what_is_shown_elsewhere(tmp_path):
    table = facts({"checkpoint": tmp_path / "lora" / "a.safetensors", "step": 8, "reason": LONG}, drop=["reason"],
                  root=tmp_path)
    assert dict(zip(table.frame["field"], table.frame["value"])) == {"checkpoint": "lora/a.safetensors", "step": "8"}
    assert "dtype" not in repr(table) and LONG.strip() not in table._repr_html_()


def test_picked_columns_and_wide_tables_split():
    frame = pd.DataFrame({f"c{i}": [i] for i in range(13)})
    assert list(show(frame, columns=["c3", "c1"]).frame.columns) == ["c3", "c1"]
    parts = show(frame, max_columns=6).parts()
    assert [list(p.columns) for p in parts] == [["c0", "c1", "c2", "c3", "c4", "c5"], ["c0", "c6", "c7", "c8", "c9", "c10"],
                                                ["c0", "c11", "c12"]]
    assert show(frame)._repr_html_().count("<table") == 2


def test_params_table_shows_only_what_differs():
    values = cell_defaults("01_dataset")
    assert values["repeats"] == 10 and "workspace" in values
    same = DatasetParams.validate_values(values, check_paths=False)
    assert list(params_table(same).frame.iloc[:, 0]) == ["(none)"]
    changed = DatasetParams.validate_values({**values, "repeats": 3, "workspace": "outputs/other"}, check_paths=False)
    frame = params_table(changed).frame
    assert dict(zip(frame.iloc[:, 0], frame.iloc[:, 1])) == {"workspace": "outputs/other", "repeats": "3"}
    assert "PosixPath" not in params_table(changed)._repr_html_()


def test_caption_grid_embeds_images_with_full_captions(tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"img{i}.png")
        Image.new("RGB", (640, 320), (i * 80, 10, 10)).save(paths[-1])
    grid = caption_grid(paths, [LONG + str(i) for i in range(3)], columns=2)
    page = grid._repr_html_()
    assert page.count('src="data:image/jpeg;base64,') == 3 and "--cols:2" in page
    assert all(f"{LONG.strip()}{i}" in page.replace("\n", " ") or (LONG + str(i)) in page for i in range(3))
    assert "img2.png" in repr(grid)


def test_a_relative_workspace_is_taken_from_the_repo_not_the_notebooks_folder(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # a notebook's kernel runs in notebooks/, not at the repo root
    frame = pd.DataFrame({"file": [repo_root() / "outputs" / "demo" / "lora" / "a.safetensors"]})
    assert show(frame, root="outputs/demo").frame["file"].tolist() == ["lora/a.safetensors"]
