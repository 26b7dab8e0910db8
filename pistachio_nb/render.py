"""Rendered pages a person reads offline: self-contained notebook HTML and a run folder's index.html.

Self-contained means the page loads nothing: images are embedded as data URIs, the CDN scripts nbconvert's
lab template adds (require.js, MathJax, mermaid, the widget manager) are left out, and widgets are drawn
from their saved state as plain HTML (a progress bar stays a bar; a control says to open JupyterLab).
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import nbformat

from .files import write_text
from .secrets import scrub, scrub_data

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# lab's page without the blocks that load scripts from CDNs (nothing reaches the network offline)
OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""
INTERACTIVE_NOTE = "<em>A static picture of an interactive control: open the notebook in JupyterLab to use it.</em>"


def widget_html(model_id: str, state: dict[str, Any]) -> str:
    """A widget drawn from its saved state: boxes by their children, text and images as they were, a bar as
    <progress>, any other control by its description and value (disabled)."""
    model = state.get(model_id, {})
    name, s = model.get("model_name", ""), model.get("state", {})
    if name.endswith("BoxModel"):
        inner = "".join(widget_html(c.removeprefix("IPY_MODEL_"), state) for c in s.get("children", []))
        direction = "row" if name == "HBoxModel" else "column"
        return f'<div style="display:flex;flex-direction:{direction};gap:0.5em">{inner}</div>'
    if name in ("HTMLModel", "HTMLMathModel"):
        return f"<div>{s.get('value', '')}</div>"
    if name in ("FloatProgressModel", "IntProgressModel"):
        return f'<progress value="{s.get("value", 0)}" max="{s.get("max", 100)}"></progress>'
    if name == "ImageModel":
        data = next((b["data"] for b in model.get("buffers", []) if b.get("path") == ["value"]), "")
        return f'<img style="max-width:256px" alt="" src="data:image/{s.get("format", "png")};base64,{data}">'
    if name == "ButtonModel":
        return f"<button disabled>{html.escape(str(s.get('description', '')))}</button>"
    label = html.escape(str(s.get("description", "")))
    value = html.escape(str(s.get("value", "")))
    return f"<div>{label + ': ' if label else ''}<span style='white-space:pre-wrap'>{value}</span></div>"


def static_widgets(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Replace each widget output by static HTML from the notebook's saved widget state, under a note."""
    state = notebook.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in notebook.cells:
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            if view is not None:
                drawn = widget_html(view.get("model_id", ""), state) if view.get("model_id") in state else ""
                out["data"] = {"text/html": f"<p>{INTERACTIVE_NOTE}</p>{drawn}"}
    notebook.metadata.pop("widgets", None)
    return notebook


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# a console tqdm bar: "desc: 100%|####| 27/27 [00:01<00:00, 18.3img/s]" (headless runs draw bars as text)
CLEARED = re.compile(r"^\s+\x1b\[A")  # tqdm's erase of a nested bar: spaces over it, then cursor up
TQDM_LINE = re.compile(r"^(?P<desc>[^\n]*?)\s*\d+%\|.*\|.*\[.*\]\s*$")


def split_progress(text: str) -> tuple[str, str]:
    """A stderr stream split into (tqdm bars, each bar's last state one per line; every other line, in order)."""
    last: dict[str, str] = {}
    other: list[str] = []
    previous = None
    for raw in text.split("\n"):
        if previous is not None and CLEARED.match(raw):  # a bar with leave=False erased itself: drop it
            last.pop(previous, None)
        line = ANSI.sub("", raw.rsplit("\r", 1)[-1]).rstrip()
        match = TQDM_LINE.match(line.strip())
        if match is not None:
            previous = match["desc"].strip()
            last[previous] = line.strip()
        elif line.strip():
            other.append(line)
    return "".join(f"{bar}\n" for bar in last.values()), "".join(f"{line}\n" for line in other)


def quiet_progress(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Progress bars (stderr text in a headless run) shown as plain output, so a red box means a real warning."""
    for cell in notebook.cells:
        outputs = []
        for out in cell.get("outputs", []):
            bars, other = split_progress(out.get("text", "")) if out.get("name") == "stderr" else ("", "")
            if not bars:
                outputs.append(out)
                continue
            outputs.append(nbformat.v4.new_output("stream", name="stdout", text=bars))
            if other:
                outputs.append(nbformat.v4.new_output("stream", name="stderr", text=other))
        if "outputs" in cell:
            cell["outputs"] = outputs
    return notebook


def export_html(notebook: nbformat.NotebookNode, folder: Path) -> str:
    """The lab page of `notebook`, offline: markdown images under `folder` embedded, no CDN script."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(extra_loaders=[DictLoader({"pistachio_offline.html.j2": OFFLINE_TEMPLATE})],
                            template_file="pistachio_offline.html.j2", embed_images=True)
    body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"path": str(folder)}})
    # notebooks link to each other by .ipynb (right in JupyterLab); in a run folder the page beside is .html
    return re.sub(r'href="(\d\d_\w+)\.ipynb"', r'href="\1.html"', body)


def render_html(rendered: Path) -> Path:
    """Write the rendered notebook's HTML beside it, exported from the scrubbed notebook and scrubbed again.

    Scrubbing the parsed cells (not the file's text) catches secrets the JSON or HTML escaping changed. The
    progress bars become plain output in the .ipynb too, so the notebook opened in JupyterLab shows no red boxes.
    """
    notebook = quiet_progress(nbformat.read(str(rendered), as_version=4))
    write_text(rendered, nbformat.writes(notebook))
    notebook = static_widgets(scrub_data(notebook))
    return write_text(rendered.with_suffix(".html"), scrub(export_html(notebook, rendered.parent)))


def first_figure(rendered: Path) -> str | None:
    """The first PNG a rendered notebook shows, base64 (the index's thumbnail), or None."""
    try:
        notebook = json.loads(rendered.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for cell in notebook.get("cells", []):
        for out in cell.get("outputs", []):
            png = out.get("data", {}).get("image/png")
            if png:
                return "".join(png).replace("\n", "")
    return None


def title_of(rendered: Path) -> str:
    """A notebook's first heading, without the '#'."""
    try:
        first = json.loads(rendered.read_text(encoding="utf-8"))["cells"][0]["source"]
        return "".join(first).splitlines()[0].lstrip("# ").strip()
    except (OSError, ValueError, KeyError, IndexError):
        return rendered.stem


INDEX_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:72em;color:#222}
table{border-collapse:collapse}td,th{padding:.5em 1em;border-bottom:1px solid #ddd;text-align:left;vertical-align:middle}
.ok{color:#1a7f37}.failed,.interrupted{color:#c62828;font-weight:bold}.skipped,.pending{color:#888}
img{max-height:90px;max-width:160px;border:1px solid #eee}"""


def index_html(run_dir: Path, summary: dict) -> str:
    """The run folder's index page: per notebook its title (linked), status, seconds, first figure, error."""
    rows = []
    for name, r in summary.get("notebooks", {}).items():
        page, rendered = run_dir / f"{name}.html", run_dir / f"{name}.ipynb"
        title = html.escape(title_of(rendered) if rendered.exists() else name)
        link = f'<a href="{name}.html">{title}</a>' if page.exists() else title
        png = first_figure(rendered) if rendered.exists() else None
        thumb = f'<img alt="first figure of {name}" src="data:image/png;base64,{png}">' if png else ""
        error = f"<br><small>{html.escape(r['error'])}</small>" if r.get("error") else ""
        status = html.escape(str(r.get("status", "")))
        rows.append(f'<tr><td>{link}{error}</td><td class="{status}">{status}</td>'
                    f'<td>{r.get("seconds", 0):.1f} s</td><td>{thumb}</td></tr>')
    head = f"Run {html.escape(run_dir.name)}: {'ok' if summary.get('ok') else 'not ok'}"
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{head}</title>'
            f"<style>{INDEX_STYLE}</style></head><body><h1>{head}</h1>"
            f"<p>Profile {html.escape(str(summary.get('profile', '')))}. Each notebook's page is self-contained "
            "(open it offline); summary.json has the same facts for scripts.</p>"
            "<table><tr><th>notebook</th><th>status</th><th>time</th><th>first figure</th></tr>"
            + "".join(rows) + "</table></body></html>\n")


def write_index(run_dir: Path, summary: dict) -> Path:
    """Write `index.html` into the run folder (scrubbed, like every page)."""
    return write_text(run_dir / "index.html", scrub(index_html(run_dir, summary)))
