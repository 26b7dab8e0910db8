"""API-format workflow templates: load from `pistachio_nb/workflows/`, fill fields by node class and title, check.

Nodes are found by `class_type` and `_meta.title`, never by hard-coded ids, so a workflow re-exported
from the ComfyUI editor ("Save (API Format)") keeps working when its node numbers change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import WorkflowError, describe_node_errors
from .validation import validate_graph

WORKFLOWS_DIR = Path(__file__).resolve().parent.parent / "workflows"

# field -> (node class, word the node's title must contain or None, input names it sets);
# the fields every sampling workflow has, then each template's own
SAMPLER_FIELDS: dict[str, tuple[str, str | None, tuple[str, ...]]] = {
    "prompt": ("CLIPTextEncode", "positive", ("text",)),
    "negative": ("CLIPTextEncode", "negative", ("text",)),
    "seed": ("KSampler", None, ("seed",)),
    "steps": ("KSampler", None, ("steps",)),
    "cfg": ("KSampler", None, ("cfg",)),
    "checkpoint": ("CheckpointLoaderSimple", None, ("ckpt_name",)),
    "lora": ("LoraLoader", None, ("lora_name",)),
    "lora_strength": ("LoraLoader", None, ("strength_model", "strength_clip")),
    "filename_prefix": ("SaveImage", None, ("filename_prefix",)),
}
TXT2IMG_FIELDS = {
    **SAMPLER_FIELDS,
    "width": ("EmptyLatentImage", None, ("width",)),
    "height": ("EmptyLatentImage", None, ("height",)),
}


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


def title(node: dict[str, Any]) -> str:
    return str(node.get("_meta", {}).get("title", ""))


def find_node(graph: dict[str, Any], class_type: str, title_word: str | None = None) -> str:
    """The one node of a class (whose title contains `title_word`, case-insensitive); error if none or several."""
    ids = [nid for nid, n in graph.items() if n["class_type"] == class_type
           and (title_word is None or title_word.lower() in title(n).lower())]
    what = class_type + (f" titled '*{title_word}*'" if title_word else "")
    if not ids:
        raise WorkflowError(f"workflow has no {what} node", fix="add it, or set its title in the ComfyUI editor")
    if len(ids) > 1:
        raise WorkflowError(f"workflow has {len(ids)} {what} nodes ({', '.join(ids)}); which one is meant is unclear",
                            fix="give the nodes distinct titles (e.g. 'Positive prompt', 'Negative prompt')")
    return ids[0]


def fill(graph: dict[str, Any], fields: dict[str, tuple[str, str | None, tuple[str, ...]]] = TXT2IMG_FIELDS,
         **values: Any) -> dict[str, Any]:
    """A copy of the graph with each given value (None = keep the template's) set on its node's inputs."""
    out = {nid: {**node, "inputs": dict(node.get("inputs", {}))} for nid, node in graph.items()}  # inputs are replaced, never mutated
    for key, value in values.items():
        if value is None:
            continue
        if key not in fields:
            raise WorkflowError(f"unknown workflow field {key!r}", fix=f"known: {', '.join(fields)}")
        class_type, word, inputs = fields[key]
        node = out[find_node(out, class_type, word)]
        for name in inputs:
            node["inputs"][name] = value
    return out


def check_workflow(graph: dict[str, Any], object_info: dict[str, Any], where: str = "workflow") -> None:
    """Validate the graph against a server's `/object_info` before submitting; raise naming each bad input."""
    verdict = validate_graph(graph, object_info)
    if not verdict.ok or verdict.node_errors:
        error = verdict.error or {"message": "some outputs failed validation"}
        raise WorkflowError(f"{where} does not fit this server's nodes: {describe_node_errors(error, verdict.node_errors)}",
                            fix="model and LoRA names must be files the server lists (GET /models/checkpoints, /models/loras)")
