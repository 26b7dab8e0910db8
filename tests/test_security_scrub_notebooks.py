"""Secrets with `" & < > '` in them are scrubbed from rendered notebooks and their HTML, whatever the escaping."""

import html
import json

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

from pistachio_nb.runner import load_summary, render_html, run_notebooks, scrub_file
from pistachio_nb.secrets import scrub, scrub_data

from .conftest import write_notebook
from .test_runner import SETUP_PARAMS, _profile

SECRET = "Hx7Q\"a&b<c>d'e Tail9Wm"  # plain ends: neither JSON nor HTML escaping changes them


def _leaks(text: str) -> list[str]:
    return [part for part in ("Hx7Q", "Tail9Wm") if part in text]


def test_scrub_catches_escaped_forms(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    for form in (SECRET, json.dumps(SECRET), html.escape(SECRET), html.escape(SECRET, quote=False), repr(SECRET),
                 json.dumps({"a": html.escape(SECRET)})):
        assert _leaks(scrub(f"x {form} y")) == [], form


def _notebook_with_secret_everywhere(path):
    nb = new_notebook()
    cell = new_code_cell(f"token = {SECRET!r}")
    cell.outputs = [
        new_output("stream", name="stdout", text=f"token is {SECRET}\n"),
        new_output("execute_result", data={"text/plain": repr(SECRET),
                                           "text/html": f"<td>{html.escape(SECRET)}</td>"}, execution_count=1),
        new_output("error", ename="RuntimeError", evalue=f"bad token {SECRET}",
                   traceback=["\x1b[0;31mRuntimeError\x1b[0m: bad token " + SECRET.replace("Tail", "\x1b[1mTail\x1b[0m")]),
    ]
    nb.cells = [cell]
    nbformat.write(nb, str(path))
    return path


def test_scrub_file_scrubs_parsed_notebook(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    path = _notebook_with_secret_everywhere(tmp_path / "r.ipynb")
    assert _leaks(path.read_text()) == ["Hx7Q", "Tail9Wm"]  # JSON-escaped on disk: a text scrub misses it
    scrub_file(path)
    text = path.read_text()
    assert _leaks(text) == []
    nb = nbformat.read(str(path), as_version=4)  # still a valid notebook, outputs kept
    outputs = nb.cells[0].outputs
    assert outputs[0].text == "token is ***\n" and outputs[2].evalue == "bad token ***"
    assert [o.output_type for o in outputs] == ["stream", "execute_result", "error"]


def test_render_html_never_carries_the_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    path = _notebook_with_secret_everywhere(tmp_path / "r.ipynb")  # not scrubbed first: render_html scrubs too
    assert _leaks(render_html(path).read_text()) == []


def test_scrub_data_walks_nested_structures(monkeypatch):
    monkeypatch.setenv("MY_API_KEY", SECRET)
    data = {"a": [SECRET, {"b": f"<{html.escape(SECRET)}>"}], "n": 3}
    assert scrub_data(data) == {"a": ["***", {"b": "<***>"}], "n": 3}


def test_real_run_with_escapable_secret_leaks_nowhere(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    nb = write_notebook(tmp_path / "nb" / "00_setup.ipynb", SETUP_PARAMS,
                        "import os, pandas as pd\nprint('token is', os.environ['HF_TOKEN'])",
                        "pd.DataFrame({'t': [os.environ['HF_TOKEN']]})",
                        "os.environ['HF_TOKEN']",
                        "raise RuntimeError('bad token ' + os.environ['HF_TOKEN'])")
    result = run_notebooks(str(nb), _profile(tmp_path, tmp_path / "ws"), runs_root=tmp_path / "runs", echo=lambda s: None)
    texts = {p.name: p.read_text() for p in result.run_dir.iterdir()}
    assert set(texts) == {"00_setup.ipynb", "00_setup.html", "summary.json", "index.html"}
    for name, text in texts.items():
        assert _leaks(text) == [], name
    assert "token is ***" in texts["00_setup.ipynb"] and "***" in texts["00_setup.html"]
    assert "bad token ***" in load_summary(result.run_dir)["notebooks"]["00_setup"]["error"]
