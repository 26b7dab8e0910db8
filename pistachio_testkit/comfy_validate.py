"""The imitation's POST /prompt validation, following ComfyUI 0.3.64's `validate_prompt` rules (not its code).

Kept apart from the product's pre-submit check (`pistachio_nb.comfy.validation`) on purpose: the imitation
must be as strict as the real server (image files must exist, bad links raise inside validation), so
the product's check is tested against it rather than against itself.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

CONVERT = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}
CUSTOM_VALIDATED = {"LoadImage": "image"}  # inputs a node's VALIDATE_INPUTS checks instead of the combo list


def _err(kind: str, message: str, details: str = "", **extra: Any) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


def _exception(ex: BaseException, **extra: Any) -> dict[str, Any]:
    return {**extra, "exception_type": type(ex).__qualname__, "traceback": traceback.format_tb(ex.__traceback__)}


def annotated_file(value: str, folders: dict[str, Path]) -> Path:
    """`name [output]` -> output/name; a plain name lies in input/ (ComfyUI's annotated paths)."""
    for kind, folder in folders.items():
        if value.endswith(f"[{kind}]"):
            return folder / value[: -len(kind) - 3]
    return folders["input"] / value


class Validator:
    """Validates nodes recursively, remembering each node's (ok, errors) like ComfyUI's `validated` dict."""

    def __init__(self, graph: dict[str, Any], info: dict[str, Any], folders: dict[str, Path]) -> None:
        self.graph, self.info, self.folders = graph, info, folders
        self.done: dict[str, tuple[bool, list]] = {}

    def node(self, nid: str) -> bool:
        if nid in self.done:
            return self.done[nid][0]
        node = self.graph[nid]
        cls, inputs = node["class_type"], node.get("inputs", {})
        spec = self.info[cls]["input"]
        errors, valid = [], True
        for kind in ("required", "optional"):
            for name, spec_list in spec.get(kind, {}).items():
                config = [spec_list[0], spec_list[1] if len(spec_list) > 1 else {}]  # ComfyUI's (type, extra_info)
                if name not in inputs:
                    if kind == "required":
                        errors.append(_err("required_input_missing", "Required input is missing", name, input_name=name))
                    continue
                value = inputs[name]
                if isinstance(value, list):
                    ok, more = self._link(name, config, value)
                    valid, errors = valid and ok, errors + more
                else:
                    errors += self._literal(cls, name, config, value)
        if name := CUSTOM_VALIDATED.get(cls):
            value = str(inputs.get(name, ""))
            if not annotated_file(value, self.folders).is_file():
                errors.append(_err("custom_validation_failed", "Custom validation failed for node",
                                   f"{name} - Invalid image file: {value}", input_name=name))
        self.done[nid] = (not errors and valid, errors)
        return self.done[nid][0]

    def _link(self, name: str, config: list, link: list) -> tuple[bool, list]:
        if len(link) != 2:
            return True, [_err("bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                               name, input_name=name, input_config=config, received_value=link)]
        source = self.graph[link[0]]  # KeyError for a missing node: ComfyUI lets it escape too
        outputs = self.info[source["class_type"]]["output"]
        if not 0 <= link[1] < len(outputs):
            raise IndexError("tuple index out of range")
        received, expected = outputs[link[1]], config[0]
        if received != expected and "*" not in (received, expected):
            return True, [_err("return_type_mismatch", "Return type mismatch between linked nodes",
                               f"{name}, received_type({received}) mismatch input_type({expected})", input_name=name,
                               input_config=config, received_type=received, linked_node=link)]
        try:
            return self.node(link[0]), []
        except Exception as ex:  # blamed on the linked node, as ComfyUI does
            self.done[link[0]] = (False, [_err("exception_during_inner_validation", "Exception when validating inner node",
                                               str(ex), **_exception(ex, input_name=name, input_config=config,
                                                                     exception_message=str(ex), linked_node=link))])
            return False, []

    def _literal(self, cls: str, name: str, config: list, value: Any) -> list[dict[str, Any]]:
        kind, opts = config
        if isinstance(value, dict) and "__value__" in value:
            value = value["__value__"]
        if isinstance(kind, str) and kind in CONVERT:
            try:
                value = CONVERT[kind](value)
            except (TypeError, ValueError) as ex:
                return [_err("invalid_input_type", f"Failed to convert an input value to a {kind} value",
                             f"{name}, {value}, {ex}", input_name=name, input_config=config, received_value=value,
                             exception_message=str(ex))]
        if CUSTOM_VALIDATED.get(cls) == name:
            return []
        extra = {"input_name": name, "input_config": config, "received_value": value}
        if "min" in opts and value < opts["min"]:
            return [_err("value_smaller_than_min", f"Value {value} smaller than min of {opts['min']}", name, **extra)]
        if "max" in opts and value > opts["max"]:
            return [_err("value_bigger_than_max", f"Value {value} bigger than max of {opts['max']}", name, **extra)]
        if isinstance(kind, list) and value not in kind:
            shown = f"(list of length {len(kind)})" if len(kind) > 20 else str(kind)
            extra["input_config"] = None if len(kind) > 20 else config
            return [_err("value_not_in_list", "Value not in list", f"{name}: '{value}' not in {shown}", **extra)]
        return []


def validate_prompt(graph: dict[str, Any], info: dict[str, Any], folders: dict[str, Path]) -> tuple[dict | None, dict, list[str]]:
    """(error or None, node_errors, outputs to execute) for a prompt, like ComfyUI's 400 answers."""
    for nid, node in graph.items():
        if "class_type" not in node:
            return _err("invalid_prompt", "Cannot execute because a node is missing the class_type property.",
                        f"Node ID '#{nid}'"), {}, []
        if node["class_type"] not in info:
            return _err("invalid_prompt", f"Cannot execute because node {node['class_type']} does not exist.",
                        f"Node ID '#{nid}'"), {}, []
    outputs = [nid for nid, node in graph.items() if info[node["class_type"]].get("output_node")]
    if not outputs:
        return _err("prompt_no_outputs", "Prompt has no outputs"), {}, []
    check = Validator(graph, info, folders)
    good, node_errors, reasons = [], {}, []
    for out in outputs:
        try:
            ok = check.node(out)
        except Exception as ex:
            ok = False
            check.done[out] = (False, [_err("exception_during_validation", "Exception when validating node", str(ex),
                                            **_exception(ex))])
        if ok:
            good.append(out)
            continue
        reasons += check.done[out][1]
        for nid, (valid, errors) in check.done.items():
            if not valid and errors:
                entry = node_errors.setdefault(nid, {"errors": errors, "dependent_outputs": [],
                                                     "class_type": graph[nid]["class_type"]})
                entry["dependent_outputs"].append(out)
    if not good:
        details = "\n".join(f"{e['message']}: {e['details']}" for e in reasons)
        return _err("prompt_outputs_failed_validation", "Prompt outputs failed validation", details), node_errors, good
    return None, node_errors, good
