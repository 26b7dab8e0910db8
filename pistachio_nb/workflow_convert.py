"""ComfyUI workflows: convert the UI's saved graph (nodes + links + widgets_values) to the API format
`/prompt` accepts, and pull the user's UI-saved workflows from a running ComfyUI into version control.

The two formats differ: the UI stores widget values as a positional list per node and links as a
separate table; the API wants `{node_id: {class_type, inputs: {name: value | [src_id, slot]}}}`.
Widget names and order come from `/object_info` (the same source the ComfyUI frontend uses).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .comfy.bindings import load_bindings, problems
from .comfy.bindings_guess import write_scaffold
from .comfy.client import ComfyClient
from .errors import InputDataError, PistachioError
from .files import write_json
from .paths import resolve

# Frontend-only node types: they never reach the server, their effect is folded into the links.
NOTE_TYPES = {"Note", "MarkdownNote"}
REROUTE, PRIMITIVE = "Reroute", "PrimitiveNode"
MODE_MUTED, MODE_BYPASS = 2, 4
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
# Companion widgets the frontend adds after some inputs; saved in widgets_values, never sent to /prompt.
SEED_CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}
UPLOAD_OPTIONS = ("image_upload", "video_upload", "audio_upload")


class WorkflowFormatError(PistachioError, ValueError):
    """A UI-format workflow cannot be converted (unknown node class, broken link, unsupported feature)."""


@dataclass(frozen=True)
class Link:
    """Where a link starts: the node id and its output slot (what an API input `[id, slot]` names)."""

    origin_id: int
    origin_slot: int


def is_ui_format(workflow: Mapping[str, Any]) -> bool:
    """True for the UI's saved graph (has a `nodes` list), False for an API-format prompt."""
    return isinstance(workflow.get("nodes"), list)


def widget_inputs(node_def: Mapping[str, Any]) -> list[tuple[str, dict]]:
    """(name, options) of the inputs the frontend shows as widgets, in its order (input_order, required first)."""
    spec = node_def.get("input", {})
    order = node_def.get("input_order") or {k: list(spec.get(k, {})) for k in ("required", "optional")}
    out = []
    for section in ("required", "optional"):
        for name in order.get(section, []):
            kind, *rest = spec[section][name]
            options = rest[0] if rest and isinstance(rest[0], dict) else {}
            is_widget = isinstance(kind, list) or kind in WIDGET_TYPES
            if is_widget and not options.get("forceInput"):
                out.append((name, {**options, "_kind": "COMBO" if isinstance(kind, list) else kind}))
    return out


def _is_companion(name: str, options: Mapping[str, Any], value: Any) -> bool:
    """Is `value` (the next saved value) a frontend companion of widget `name`: seed control or upload button?"""
    if options.get("control_after_generate") or (options["_kind"] == "INT" and name in ("seed", "noise_seed")):
        return isinstance(value, bool) or value in SEED_CONTROL_VALUES  # older UIs saved the control as true/false
    return isinstance(value, str) and any(options.get(k) for k in UPLOAD_OPTIONS) and value in ("image", "video", "audio")


def widget_values(node: Mapping[str, Any], node_def: Mapping[str, Any]) -> dict[str, Any]:
    """Map a node's positional `widgets_values` to input names, skipping the frontend's companion values."""
    raw = node.get("widgets_values") or []
    names = widget_inputs(node_def)
    if isinstance(raw, dict):  # some custom nodes save widgets by name
        return {name: raw[name] for name, _ in names if name in raw}
    values, i = {}, 0
    for name, options in names:
        if i >= len(raw) and "default" in options:  # a widget newer than the saved workflow: the UI shows its default
            values[name] = options["default"]
            continue
        if i >= len(raw):
            raise WorkflowFormatError(
                f"node {node['id']} ({node['type']}): widgets_values has {len(raw)} values, but /object_info "
                f"lists {len(names)} widget inputs ({', '.join(n for n, _ in names)})",
                fix="the workflow was saved with another version of this node; open and re-save it in the ComfyUI UI",
            )
        values[name] = raw[i]
        i += 2 if i + 1 < len(raw) and _is_companion(name, options, raw[i + 1]) else 1
    return values


def _links(workflow: Mapping[str, Any]) -> dict[int, Link]:
    """The link table, from either the classic list form or the newer object form."""
    links = {}
    for item in workflow.get("links") or []:
        if isinstance(item, dict):
            links[int(item["id"])] = Link(int(item["origin_id"]), int(item["origin_slot"]))
        else:  # [id, origin_id, origin_slot, target_id, target_slot, type]
            links[int(item[0])] = Link(int(item[1]), int(item[2]))
    return links


def _refuse_unsupported(workflow: Mapping[str, Any], nodes: dict[int, dict]) -> None:
    subgraphs = {s.get("id") for s in (workflow.get("definitions") or {}).get("subgraphs", [])}
    for node in nodes.values():
        if node["type"] in subgraphs or str(node["type"]).startswith(("workflow>", "workflow/")):
            raise WorkflowFormatError(
                f"node {node['id']} ({node['type']}) is a subgraph or group node, which this converter does not expand",
                fix="in the ComfyUI UI, unpack the subgraph/group node and save again (or use Export (API))",
            )


class _Resolver:
    """Follows links through frontend-only nodes (reroutes, primitives) and bypassed nodes."""

    def __init__(self, workflow: Mapping[str, Any], object_info: Mapping[str, Any]) -> None:
        self.nodes = {int(n["id"]): n for n in workflow["nodes"]}
        self.links = _links(workflow)
        self.object_info = object_info

    def source(self, link_id: int | None, seen: frozenset = frozenset()) -> tuple[str, Any] | None:
        """("link", [id, slot]) or ("value", v) feeding an input, or None when it leads nowhere."""
        if link_id is None or link_id not in self.links or link_id in seen:
            return None
        link, seen = self.links[link_id], seen | {link_id}
        origin = self.nodes.get(link.origin_id)
        if origin is None:
            raise WorkflowFormatError(f"link {link_id} starts at node {link.origin_id}, which is not in the workflow",
                                      fix="re-save the workflow in the ComfyUI UI (the link table is damaged)")
        mode = origin.get("mode", 0)
        if origin["type"] == PRIMITIVE:
            return ("value", (origin.get("widgets_values") or [None])[0]) if mode != MODE_MUTED else None
        if origin["type"] == REROUTE:
            return self.source((origin.get("inputs") or [{}])[0].get("link"), seen)
        if mode == MODE_MUTED:
            return None
        if mode == MODE_BYPASS:
            return self.source(self._bypass_input(origin, link.origin_slot), seen)
        return ("link", [str(link.origin_id), link.origin_slot])

    def _bypass_input(self, node: Mapping[str, Any], slot: int) -> int | None:
        """A bypassed node passes through the input whose type matches the output (same slot first)."""
        outputs, inputs = node.get("outputs") or [], node.get("inputs") or []
        wanted = outputs[slot]["type"] if slot < len(outputs) else None
        ordered = ([inputs[slot]] if slot < len(inputs) else []) + inputs
        return next((i.get("link") for i in ordered if i.get("type") == wanted and i.get("link") is not None), None)


def ui_to_api(workflow: Mapping[str, Any], object_info: Mapping[str, Any]) -> dict[str, dict]:
    """Convert a UI-format workflow to the API format `/prompt` accepts, using `/object_info` for input names."""
    if not is_ui_format(workflow):
        raise WorkflowFormatError("not a UI-format workflow (no `nodes` list)", fix="API-format workflows need no conversion")
    res = _Resolver(workflow, object_info)
    _refuse_unsupported(workflow, res.nodes)
    api: dict[str, dict] = {}
    for node_id in sorted(res.nodes):
        node = res.nodes[node_id]
        kind = node["type"]
        if kind in NOTE_TYPES or kind in (REROUTE, PRIMITIVE) or node.get("mode", 0) in (MODE_MUTED, MODE_BYPASS):
            continue
        if kind not in object_info:
            raise WorkflowFormatError(
                f"node {node_id} is of class {kind!r}, which this ComfyUI does not have (not in /object_info)",
                fix=f"install the custom node pack that provides {kind!r} and restart ComfyUI",
            )
        inputs: dict[str, Any] = {k: {"__value__": v} if isinstance(v, list) else v
                                  for k, v in widget_values(node, object_info[kind]).items()}
        for inp in node.get("inputs") or []:
            name = (inp.get("widget") or {}).get("name") or inp["name"]
            found = res.source(inp.get("link"))
            if found is not None:
                inputs[name] = found[1]
        title = node.get("title") or object_info[kind].get("display_name") or kind
        api[str(node_id)] = {"class_type": kind, "inputs": inputs, "_meta": {"title": title}}
    for entry in api.values():  # inputs fed by nodes that were dropped
        entry["inputs"] = {k: v for k, v in entry["inputs"].items() if not (isinstance(v, list) and v[0] not in api)}
    return api


def node_classes(api_workflow: Mapping[str, Any]) -> set[str]:
    """The node classes an API-format workflow uses."""
    return {node["class_type"] for node in api_workflow.values() if isinstance(node, dict) and "class_type" in node}


def workflow_node_classes(folders: list[Path]) -> list[str]:
    """Node classes used by every API-format workflow (`*.json`) directly in the given folders."""
    found: set[str] = set()
    for folder in folders:
        for path in sorted(Path(folder).glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise InputDataError(f"workflow {path} is not valid JSON: {err}", fix="fix or remove the file") from None
            if isinstance(data, dict) and not is_ui_format(data):
                found |= node_classes(data)
    return sorted(found)


def _flat_name(rel_path: str) -> str:
    """`sub/a b.json` -> `sub__a b.json`: one flat folder, like the package's workflows/."""
    return rel_path.replace("/", "__")


def _save_if_changed(dest: Path, data: Any) -> str:
    """Write JSON atomically; report new / updated / unchanged (git holds the history of updates)."""
    if dest.exists():
        try:
            if json.loads(dest.read_text(encoding="utf-8")) == data:
                return "unchanged"
        except json.JSONDecodeError:
            pass
        write_json(dest, data)
        return "updated"
    write_json(dest, data)
    return "new"


WORKFLOW_COLUMNS = ["workflow", "format", "saved_status", "api_status", "nodes", "bindings", "saved_file", "api_file",
                    "bindings_file", "detail"]


def _bindings_status(api_file: Path, api: dict[str, Any], object_info: Mapping[str, Any]) -> tuple[str, str]:
    """Write a scaffold bindings file beside a new API workflow; an existing one is kept and checked against it."""
    path, guess = write_scaffold(api_file, dict(object_info))
    if guess is not None:
        doubts = [f"{what}: {', '.join(fields)}" for what, fields in (("ambiguous", guess.ambiguous),
                                                                     ("not bound", guess.unbound)) if fields]
        return "new scaffold: check it" + (f" ({'; '.join(doubts)})" if doubts else ""), str(path)
    try:
        bindings = load_bindings(path)
    except PistachioError as err:
        return f"kept, unreadable: {str(err).splitlines()[0]}", str(path)
    found = problems(bindings, api, bindings.fields, dict(object_info))
    return (f"kept, {len(found)} problem(s): {'; '.join(found)}" if found else "kept, fits"), str(path)


def _row(client: ComfyClient, rel: str, object_info: Mapping[str, Any], dest_dir: Path) -> dict[str, Any]:
    """Pull one saved workflow: its saved copy, its API form (or why it has none)."""
    name = _flat_name(rel)
    try:
        ui = json.loads(client.userdata_file(f"workflows/{rel}"))
    except ValueError as err:
        return {"workflow": rel, "format": "?", "saved_status": "not saved", "api_status": "not converted", "nodes": 0,
                "bindings": "", "saved_file": "", "api_file": "", "bindings_file": "", "detail": f"not valid JSON: {err}"}
    row = {"workflow": rel, "format": "ui" if is_ui_format(ui) else "api",
           "saved_status": _save_if_changed(dest_dir / "saved" / name, ui), "saved_file": str(dest_dir / "saved" / name)}
    try:
        api = ui_to_api(ui, object_info) if is_ui_format(ui) else ui
        row.update(api_file=str(dest_dir / "api" / name), api_status=_save_if_changed(dest_dir / "api" / name, api),
                   nodes=len(api), detail="")
        row["bindings"], row["bindings_file"] = _bindings_status(dest_dir / "api" / name, api, object_info)
    except WorkflowFormatError as err:
        row.update(api_file="", api_status="not converted", nodes=0, bindings="", bindings_file="",
                   detail=str(err).splitlines()[0])
    return row


def pull_workflows(comfy_url: str, dest_dir: str | Path, timeout: float = 10.0) -> pd.DataFrame:
    """Copy the workflows saved in ComfyUI into `dest_dir/saved/` (as saved) and their API form into `dest_dir/api/`,
    with a scaffold bindings file beside each new API workflow (an existing one is kept and checked).

    Own subfolders, so a pulled workflow never replaces one of the package's templates by name. All
    requests go through `ComfyClient` (its timeouts and error types); an unreachable server raises ComfyError.
    """
    dest_dir = resolve(dest_dir)
    with ComfyClient(comfy_url, timeout=(timeout, timeout), use_websocket=False) as client:
        files = client.userdata_list("workflows")  # [] on a fresh ComfyUI: the folder appears on the first save
        saved = sorted(f for f in files if f.endswith(".json") and not Path(f).name.startswith("."))
        object_info = client.object_info() if saved else {}
        rows = [_row(client, rel, object_info, dest_dir) for rel in saved]
    return pd.DataFrame(rows, columns=WORKFLOW_COLUMNS)
