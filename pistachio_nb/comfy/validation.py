"""Validate an API-format graph against `/object_info` the way ComfyUI's `validate_prompt` does.

Used by the test server to answer 400 with ComfyUI's exact error shapes, and by the client to check
a workflow before submitting a whole batch. Mirrors ComfyUI's `execution.py` rules, not its code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CONVERTERS = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}


@dataclass
class Verdict:
    """Outcome of validating a graph: `error` is None when at least one output node is valid."""

    error: dict[str, Any] | None
    node_errors: dict[str, Any] = field(default_factory=dict)
    good_outputs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def _error(kind: str, message: str, details: str = "", **extra: Any) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


def is_link(value: Any) -> bool:
    """An input wired to another node's output: `[node_id, output_index]`."""
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def input_specs(info: dict[str, Any]) -> list[tuple[str, list, bool]]:
    """(name, spec, required) for every required and optional input of a node class."""
    inputs = info.get("input", {})
    return [(n, s, kind == "required") for kind in ("required", "optional") for n, s in inputs.get(kind, {}).items()]


def beyond_listing(value: Any) -> bool:
    """An upload-combo value `/object_info` cannot list: in a subfolder (`pistachio/x.png`) or another folder (`x.png [output]`).

    ComfyUI lists only the top-level files of `input/` for LoadImage, but its `VALIDATE_INPUTS` accepts any
    existing annotated path instead of the list; only the server can check those, so they pass here.
    """
    name = str(value)
    annotated = name.endswith(("[input]", "[output]", "[temp]"))
    folder = name.rsplit(" [", 1)[0] if annotated else name
    return "/" in folder or "\\" in folder or (annotated and not name.endswith("[input]"))


def _check_widget(name: str, spec: list, value: Any) -> list[dict[str, Any]]:
    """Errors of one literal input value against its spec (combo list, type, min/max)."""
    kind, opts = spec[0], (spec[1] if len(spec) > 1 else {})
    extra = {"input_name": name, "input_config": spec, "received_value": value}
    if kind == "COMBO":  # a V3 node's combo (e.g. SaveVideo format): its choices are in `options`
        kind = opts.get("options", [])
    if isinstance(kind, list):
        if opts.get("image_upload"):  # ComfyUI's own rule: the file exists (not: the name is in the list)
            if isinstance(value, str) and (beyond_listing(value) or value.removesuffix(" [input]") in kind):
                return []
            return [_error("custom_validation_failed", "Custom validation failed for node",
                           f"{name} - Invalid image file: {value}", input_name=name)]
        if value not in kind:
            shown = kind if len(kind) <= 20 else [*kind[:20], "..."]
            return [_error("value_not_in_list", "Value not in list", f"{name}: '{value}' not in {shown}", **extra)]
        return []
    if kind not in CONVERTERS:
        return [_error("required_input_missing", "Required input is missing", name, input_name=name)]
    try:
        value = CONVERTERS[kind](value)
    except (TypeError, ValueError) as err:
        return [_error("invalid_input_type", f"Failed to convert an input value to a {kind} value",
                       f"{name}, {value}, {err}", **extra)]
    if "min" in opts and value < opts["min"]:
        return [_error("value_smaller_than_min", f"Value {value} smaller than min of {opts['min']}", name, **extra)]
    if "max" in opts and value > opts["max"]:
        return [_error("value_bigger_than_max", f"Value {value} bigger than max of {opts['max']}", name, **extra)]
    return []


class _Validator:
    def __init__(self, graph: dict[str, Any], object_info: dict[str, Any]) -> None:
        self.graph, self.info = graph, object_info
        self.done: dict[str, tuple[bool, list]] = {}

    def node(self, node_id: str) -> bool:
        """Validate a node and, recursively, the nodes it reads from; remember each result."""
        if node_id in self.done:
            return self.done[node_id][0]
        self.done[node_id] = (True, [])  # guards against cycles while recursing
        node = self.graph[node_id]
        inputs = node.get("inputs", {})
        errors, upstream_ok = [], True
        for name, spec, required in input_specs(self.info[node["class_type"]]):
            if name not in inputs:
                if required:
                    errors.append(_error("required_input_missing", "Required input is missing", name, input_name=name))
                continue
            value = inputs[name]
            if is_link(value):
                errors += self._check_link(name, spec, value)
                if value[0] in self.graph and not self.node(value[0]):
                    upstream_ok = False
            elif isinstance(value, list):
                errors.append(_error("bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                                     name, input_name=name, input_config=spec, received_value=value))
            else:
                errors += _check_widget(name, spec, value)
        self.done[node_id] = (not errors and upstream_ok, errors)
        return self.done[node_id][0]

    def _check_link(self, name: str, spec: list, link: list) -> list[dict[str, Any]]:
        source = self.graph.get(link[0])
        if source is None:
            return [_error("bad_linked_input", "Bad linked input", f"{name}: node {link[0]} does not exist", input_name=name)]
        outputs = self.info[source["class_type"]].get("output", [])
        received = outputs[link[1]] if 0 <= link[1] < len(outputs) else None
        expected = spec[0]
        if received is None or (expected != "*" and received != "*" and received != expected):
            return [_error("return_type_mismatch", "Return type mismatch between linked nodes",
                           f"{name}, received_type({received}) mismatch input_type({expected})",
                           input_name=name, input_config=spec, received_type=received, linked_node=link)]
        return []


def validate_graph(graph: Any, object_info: dict[str, Any]) -> Verdict:
    """Check node classes, output nodes, required inputs, links, types and ranges like ComfyUI."""
    if not isinstance(graph, dict) or not graph:
        return Verdict(_error("invalid_prompt", "Cannot execute because the prompt is not a node dictionary."))
    for node_id, node in graph.items():
        if not isinstance(node, dict) or "class_type" not in node:
            return Verdict(_error("invalid_prompt", "Cannot execute because a node is missing the class_type property.",
                                  f"Node ID '#{node_id}'"))
        if node["class_type"] not in object_info:
            return Verdict(_error("invalid_prompt", f"Cannot execute because node {node['class_type']} does not exist.",
                                  f"Node ID '#{node_id}'"))
    outputs = [nid for nid, node in graph.items() if object_info[node["class_type"]].get("output_node")]
    if not outputs:
        return Verdict(_error("prompt_no_outputs", "Prompt has no outputs"))
    check = _Validator(graph, object_info)
    good, node_errors, output_reasons = [], {}, []
    for out in outputs:
        if check.node(out):
            good.append(out)
            continue
        output_reasons += check.done[out][1]
        for node_id, (valid, reasons) in check.done.items():
            if not valid and reasons:
                entry = node_errors.setdefault(node_id, {"errors": reasons, "dependent_outputs": [],
                                                         "class_type": graph[node_id]["class_type"]})
                entry["dependent_outputs"].append(out)
    if not good:
        details = "\n".join(f"{e['message']}: {e['details']}" for e in output_reasons)
        return Verdict(_error("prompt_outputs_failed_validation", "Prompt outputs failed validation", details),
                       node_errors, good)
    return Verdict(None, node_errors, good)
