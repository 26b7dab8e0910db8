"""Shared fixtures: single-threaded torch and one demo run of every notebook per session."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from pistachio_nb.paths import repo_root  # noqa: E402

ROOT = repo_root()


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """Run `pistachio run all --params params/demo.yaml` once into a temp workspace; yield (result, workspace)."""
    from pistachio_nb.runner import run_notebooks

    base = tmp_path_factory.mktemp("demo")
    workspace = base / "workspace"
    result = run_notebooks("all", ROOT / "params" / "demo.yaml", [f"workspace={workspace}"], runs_root=base / "runs")
    return result, workspace


def write_notebook(path: Path, param_lines: str, *code_cells: str) -> Path:
    """A tiny single-purpose fixture notebook: a tagged parameters cell then the given code cells."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = new_code_cell(param_lines)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(new_code_cell(c) for c in code_cells)]
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"c{i}"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path
