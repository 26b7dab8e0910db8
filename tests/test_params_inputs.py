"""Missing input files and folders are refused before any notebook runs (exit 2, the field named)."""

from __future__ import annotations

import pytest

from pistachio_nb.cli import main
from pistachio_nb.errors import ParamsError
from pistachio_nb.pod import SetupParams
from pistachio_nb.runner import run_notebooks

from .conftest import ROOT


def _profile(tmp_path, body: str):
    path = tmp_path / "p.yaml"
    path.write_text(f"common:\n  workspace: {tmp_path / 'ws'}\n{body}")
    return path


@pytest.mark.parametrize("section, field, kind", [
    ("06_batch_generation", "prompts_file", "file"),
    ("01_dataset", "source_dir", "folder"),
    ("07_knowledge_audit", "kb_root", "folder"),
    ("00_setup", "models_manifest", "file"),
])
def test_missing_input_stops_run_all_before_the_first_notebook(tmp_path, section, field, kind):
    (tmp_path / "photos").mkdir(), (tmp_path / "kb").mkdir(), (tmp_path / "prompts.csv").write_text("prompt\nx\n")
    inputs = {"01_dataset": ("source_dir", tmp_path / "photos"), "07_knowledge_audit": ("kb_root", tmp_path / "kb"),
              "06_batch_generation": ("prompts_file", tmp_path / "prompts.csv"), "00_setup": ("models_manifest", None)}
    inputs[section] = (field, tmp_path / "missing")  # every other input exists: this one alone stops the run
    profile = _profile(tmp_path, "".join(f"{s}:\n  {f}: {'null' if v is None else v}\n" for s, (f, v) in inputs.items()))
    with pytest.raises(ParamsError, match=rf"\[{section}\][\s\S]*{field}: .*missing is not an existing {kind}"):
        run_notebooks("all", profile, runs_root=tmp_path / "runs", echo=lambda s: None)
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("*.ipynb"))


def test_cli_exit_code_2_names_the_field(tmp_path, capsys):
    profile = _profile(tmp_path, f"06_batch_generation:\n  prompts_file: {tmp_path / 'nope.csv'}\n")
    assert main(["run", "06_batch_generation", "--params", str(profile)]) == 2
    assert "prompts_file" in capsys.readouterr().err


def test_empty_models_manifest_means_none_not_the_repo_root():
    values = {name: info for name, info in __import__("papermill").inspect_notebook(
        str(ROOT / "notebooks" / "00_setup.ipynb")).items()}
    defaults = {name: eval(info["default"]) for name, info in values.items()}  # the cell's plain literals
    assert SetupParams.validate_values({**defaults, "models_manifest": ""}).models_manifest is None
