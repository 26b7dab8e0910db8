"""Rendered pages: self-contained (no CDN script or stylesheet, every image embedded), no red stderr boxes,
no raw pandas reprs; widgets drawn from their saved state; an index.html per run folder.

The demo check reuses the session's one `pistachio run all` (conftest `demo_run`), so CI runs the demo once.
"""

import re
import stat

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from pistachio_nb.render import index_html, render_html, split_progress, static_widgets

STDERR_BLOCK = 'data-mime-type="application/vnd.jupyter.stderr"'


def page_problems(page: str) -> list[str]:
    """What a reader would see as broken on a rendered page (empty when clean)."""
    problems = []
    if STDERR_BLOCK in page:
        text = re.search(STDERR_BLOCK + r'[^>]*>(.{0,300})', page, re.S)
        problems.append("stderr output: " + re.sub(r"<[^>]+>", "", text.group(1) if text else "")[:200])
    problems += [f"<img> without data: {tag[:100]}" for tag in re.findall(r"<img\b[^>]*>", page)
                 if 'src="data:' not in tag]
    problems += [f"external {kind}: {url}" for kind, url in
                 re.findall(r'<(script|link)\b[^>]*(?:src|href)="((?:https?:)?//[^"]+)"', page)]
    problems += ["an output ends in 'dtype:' (a raw Series)" for _ in re.findall(r"dtype: \w+\s*</pre>", page)]
    return problems


def _notebook(tmp_path, outputs, metadata=None):
    nb = new_notebook()
    nb.metadata.update(metadata or {})
    cell = new_code_cell("x")
    cell.outputs = outputs
    nb.cells = [cell]
    path = tmp_path / "01_dataset.ipynb"
    nbformat.write(nb, str(path))
    return path


def test_render_is_self_contained_and_quiet(tmp_path):
    bars = "probe:   0%|          | 0/27 [00:00<?, ?img/s]\rprobe: 100%|██████████| 27/27 [00:01<00:00, 18.30img/s]\n"
    path = _notebook(tmp_path, [new_output("stream", name="stderr", text=bars),
                                new_output("display_data", data={"text/markdown": "see [next](02_captioning.ipynb)"})])
    page = render_html(path).read_text()
    assert page_problems(page) == []
    assert "probe: 100%" in page and "probe:   0%" not in page
    assert 'href="02_captioning.html"' in page and "require.js" not in page and "mathjax" not in page.lower()
    assert stat.S_IMODE(path.with_suffix(".html").stat().st_mode) & 0o044  # readable by others, not 0600
    outputs = nbformat.read(str(path), as_version=4).cells[0].outputs  # the .ipynb a reader opens in JupyterLab
    assert [o.get("name") for o in outputs if o.output_type == "stream"] == ["stdout"] and "probe: 100%" in outputs[0].text


def test_real_warnings_stay_red():
    bars, other = split_progress("[transformers] something is off\nmodels: 100%|███| 2/2 [00:00<00:00, 9.9file/s]\n")
    assert bars.startswith("models: 100%") and other == "[transformers] something is off\n"
    page = f'<div {STDERR_BLOCK}><pre>{other}</pre></div><img src="x.png"><script src="https://cdn.x/y.js"></script>'
    assert len(page_problems(page)) == 3


def test_widgets_drawn_from_saved_state():
    state = {"box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_t", "IPY_MODEL_b", "IPY_MODEL_p"]}},
             "t": {"model_name": "TextareaModel", "state": {"value": "pstchio, a caption <b>"}},
             "b": {"model_name": "ButtonModel", "state": {"description": "Save"}},
             "p": {"model_name": "FloatProgressModel", "state": {"value": 3, "max": 4}}}
    nb = new_notebook(metadata={"widgets": {"application/vnd.jupyter.widget-state+json": {"state": state}}})
    cell = new_code_cell("w")
    cell.outputs = [new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "box"},
                                                     "text/plain": "VBox(...)"})]
    nb.cells = [cell]
    shown = static_widgets(nb).cells[0].outputs[0]["data"]["text/html"]
    assert "pstchio, a caption &lt;b&gt;" in shown and "<button disabled>Save</button>" in shown
    assert '<progress value="3" max="4">' in shown and "JupyterLab" in shown and "widgets" not in nb.metadata


def test_index_links_status_time_and_first_figure(tmp_path):
    png = "iVBORw0KGgo="
    _notebook(tmp_path, [new_output("display_data", data={"image/png": png})]).with_suffix(".html").write_text("x")
    page = index_html(tmp_path, {"ok": False, "profile": "params/demo.yaml", "notebooks": {
        "01_dataset": {"status": "ok", "seconds": 12.34, "error": None},
        "02_captioning": {"status": "skipped", "seconds": 0.0, "error": None}}})
    assert '<a href="01_dataset.html">' in page and "12.3 s" in page and f"base64,{png}" in page
    assert 'class="skipped"' in page and 'href="02_captioning.html"' not in page and page_problems(page) == []


@pytest.mark.notebooks
def test_demo_pages_read_clean(demo_run):
    result, _ = demo_run
    problems = {r.notebook: page_problems((result.run_dir / f"{r.notebook}.html").read_text())
                for r in result.results}
    assert not {k: v for k, v in problems.items() if v}, problems
    index = (result.run_dir / "index.html").read_text()
    assert all(f'href="{r.notebook}.html"' in index for r in result.results) and page_problems(index) == []
