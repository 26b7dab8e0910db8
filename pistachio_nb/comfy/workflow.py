"""API-format workflows: load from `pistachio_nb/workflows/` or a path, fill through their bindings, check.

Nodes are found through the workflow's bindings file (field -> node title or id -> input), never by
node class, so any graph works, and a re-export from the editor keeps working when node numbers change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .bindings import Bindings, assignments, bindings_path, load_bindings, resolve_node
from .errors import WorkflowError, describe_node_errors
from .validation import is_link, validate_graph

if TYPE_CHECKING:
    import pandas as pd

WORKFLOWS_DIR = Path(__file__).resolve().parent.parent / "workflows"


def workflow_path(name: str | Path) -> Path:
    """A workflow file: an existing path, or a template name in `pistachio_nb/workflows/` (`.json` optional)."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    packaged = WORKFLOWS_DIR / (path.name if path.suffix == ".json" else f"{path.name}.json")
    if packaged.is_file():
        return packaged
    known = ", ".join(sorted(p.stem for p in WORKFLOWS_DIR.glob("*.json")))
    raise WorkflowError(f"workflow {str(name)!r} not found (neither a file nor a template)", fix=f"templates: {known}")


def load_workflow(name: str | Path) -> dict[str, Any]:
    """Read an API-format workflow; the UI's graph format is refused with how to export the right one."""
    path = workflow_path(name)
    try:
        graph = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise WorkflowError(f"{path}: not valid JSON ({err})") from None
    if isinstance(graph, dict) and "nodes" in graph and "links" in graph:
        raise WorkflowError(f"{path} is a ComfyUI UI workflow, not the API format",
                            fix="in ComfyUI enable dev mode options and use 'Save (API Format)'")
    if not isinstance(graph, dict) or not all(isinstance(n, dict) and "class_type" in n for n in graph.values()):
        raise WorkflowError(f"{path}: expected {{node_id: {{class_type, inputs}}}} (API format)")
    return graph


def workflow_bindings(name: str | Path) -> Bindings:
    """The bindings file beside a workflow (`x.json` -> `x.bindings.yaml`), loaded strictly."""
    return load_bindings(bindings_path(workflow_path(name)))


def bindings_table(name: str | Path) -> pd.DataFrame:
    """One row per input a workflow's bindings write: field, node (as the file names it), id, class, value now."""
    import pandas as pd

    graph, bindings = load_workflow(name), workflow_bindings(name)
    rows = []
    for b in bindings.items:
        nid, why = resolve_node(graph, b.node)
        node = graph[nid] if nid else {"class_type": why, "inputs": {}}
        rows += [{"field": b.field, "node": b.node, "id": nid or "", "class_type": node["class_type"], "input": name,
                  "in_workflow": node["inputs"].get(name), "set_to": "the job's value" if b.value is None else b.value}
                 for name in b.inputs or ("",)]
    return pd.DataFrame(rows)


def fill(graph: dict[str, Any], bindings: Bindings | None = None, **values: Any) -> dict[str, Any]:
    """A copy of the graph with each given value (None = keep the graph's) set where the bindings say.

    Without bindings they are guessed from the graph (`bindings_guess`), refusing any field that is ambiguous.
    """
    if bindings is None:
        from .bindings_guess import guessed

        bindings = guessed(graph, [k for k, v in values.items() if v is not None])
    out = {nid: {**node, "inputs": dict(node.get("inputs", {}))} for nid, node in graph.items()}  # inputs are replaced, never mutated
    for node_id, name, value in assignments(bindings, graph, values):
        out[node_id]["inputs"][name] = value
    return out


def bypass(graph: dict[str, Any], node_id: str) -> dict[str, Any]:
    """The graph without a pass-through node: an input that read its output reads the node's input of that name.

    E.g. a LoRA loader's MODEL and CLIP go to its consumers' `model` and `clip` inputs, so they read the loader's own.
    """
    own = {k: v for k, v in graph[node_id]["inputs"].items() if is_link(v)}
    out = {nid: {**n, "inputs": dict(n["inputs"])} for nid, n in graph.items() if nid != node_id}
    for nid, node in out.items():
        for name, value in node["inputs"].items():
            if is_link(value) and value[0] == node_id:
                if name not in own:
                    raise WorkflowError(f"cannot leave node {node_id} out: node {nid} input {name!r} reads its output "
                                        f"{value[1]} and node {node_id} has no linked input {name!r} to pass through",
                                        fix="keep the node in the workflow (e.g. set its strength to 0)")
                node["inputs"][name] = own[name]
    return out


def check_workflow(graph: dict[str, Any], object_info: dict[str, Any], where: str = "workflow") -> None:
    """Validate the graph against a server's `/object_info` before submitting; raise naming each bad input."""
    verdict = validate_graph(graph, object_info)
    if not verdict.ok or verdict.node_errors:
        error = verdict.error or {"message": "some outputs failed validation"}
        raise WorkflowError(f"{where} does not fit this server's nodes: {describe_node_errors(error, verdict.node_errors)}",
                            fix="model and LoRA names must be files the server lists (GET /models/checkpoints, /models/loras)")
