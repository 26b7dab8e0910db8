"""Every notebook: the documented shape, then one headless demo run of all of them with checked outputs."""

import re

import nbformat
import pandas as pd
import papermill as pm
import pytest

from pistachio_nb.params import params_model_for
from pistachio_nb.runner import declared_artifacts, select_notebooks

NOTEBOOKS = select_notebooks("all")
IDS = [nb.stem for nb in NOTEBOOKS]


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=IDS)
def test_parameters_cell_matches_params_model(nb_path):
    cell_fields = set(pm.inspect_notebook(str(nb_path)))
    model_fields = set(params_model_for(nb_path.stem).model_fields)
    assert cell_fields == model_fields, f"cell only: {cell_fields - model_fields}; model only: {model_fields - cell_fields}"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=IDS)
def test_field_descriptions_equal_parameters_cell_comments(nb_path):
    """The `# meaning` a person reads in the cell is the description `--help-notebook` and errors show."""
    cell = pm.inspect_notebook(str(nb_path))
    model = params_model_for(nb_path.stem).model_fields
    differ = {name: (cell[name]["help"], field.description) for name, field in model.items()
              if name in cell and cell[name]["help"] != field.description}
    assert not differ, "\n".join(f"{n}:\n  cell:  {c}\n  model: {m}" for n, (c, m) in differ.items())


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=IDS)
def test_notebook_shape(nb_path):
    nb = nbformat.read(str(nb_path), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert not any(c.get("outputs") for c in code), "commit notebooks without outputs"
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1
    params_idx = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    assert ".from_namespace(globals())" in nb.cells[params_idx + 1].source
    for cell in code:
        is_params = "parameters" in cell.metadata.get("tags", [])
        assert is_params or len(cell.source.splitlines()) <= 15, cell.source[:80]
        assert not re.search(r"^\s*(def|class)\s", cell.source, re.M), "functions belong in pistachio_nb"
    for line in nb.cells[params_idx].source.splitlines():
        assert re.match(r"^\w+: [\w\[\], |]+ = .+  # .+", line), f"parameter line without `name: type = value  # meaning`: {line}"
    assert declared_artifacts(nb_path), "declare the artifacts the notebook writes in metadata.pistachio.artifacts"


# ---- one demo run of every notebook, then checks of what each wrote
@pytest.mark.notebooks
def test_demo_run_all_ok(demo_run):
    result, _ = demo_run
    assert [r.notebook for r in result.results] == IDS
    failed = {r.notebook: r.error for r in result.results if r.status != "ok"}
    assert not failed, failed
    for r in result.results:
        assert (result.run_dir / f"{r.notebook}.html").stat().st_size > 10_000


def _check_00_setup(ws, rendered):
    env = pd.read_csv(ws / "setup" / "environment.csv").set_index("check")["value"]
    assert env["torch"].startswith("2.13.0")
    assert pd.read_csv(ws / "setup" / "drift.csv").empty  # the demo environment is the tested set
    assert "CUDA available" in rendered
    health = pd.read_csv(ws / "setup" / "health.csv").set_index("check")["status"]
    assert "FAIL" not in set(health) and health["ComfyUI reachable"] == "PASS" and health["node classes loaded"] == "PASS"
    assert set(pd.read_csv(ws / "setup" / "models.csv")["status"]) <= {"present", "downloaded"}
    workflows = pd.read_csv(ws / "setup" / "workflows.csv")
    assert len(workflows) and set(workflows["api_status"]) <= {"new", "unchanged", "updated"}


def _checks() -> dict:
    """Notebook -> its output check; each stage's test module owns `check_demo_outputs(ws, rendered)`."""
    from . import (test_batch_run, test_captions, test_dataset_pipeline, test_evaluation_compare, test_inpainting,
                   test_knowledge_audit, test_training_loop, test_video_batch)

    return {
        "00_setup": _check_00_setup,
        "01_dataset": test_dataset_pipeline.check_demo_outputs,
        "02_captioning": test_captions.check_demo_outputs,
        "03_training": test_training_loop.check_demo_outputs,
        "04_checkpoints": test_evaluation_compare.check_demo_outputs,
        "05_inpainting": test_inpainting.check_demo_outputs,
        "06_batch_generation": test_batch_run.check_demo_outputs,
        "07_knowledge_audit": test_knowledge_audit.check_demo_outputs,
        "08_video": test_video_batch.check_demo_outputs,
    }


CHECKS = _checks()


@pytest.mark.notebooks
@pytest.mark.parametrize("name", IDS)
def test_demo_outputs(demo_run, name):
    result, ws = demo_run
    res = next(r for r in result.results if r.notebook == name)
    assert res.status == "ok", res.error
    assert name in CHECKS, f"add an output check for {name} to tests/test_notebooks.py"
    CHECKS[name](ws, (result.run_dir / f"{name}.ipynb").read_text())
