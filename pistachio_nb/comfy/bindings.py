"""Bindings: which node input of a workflow each pistachio field (prompt, seed, LoRA, ...) sets.

A workflow `x.json` (API format) has `x.bindings.yaml` beside it: `field: {node: <title or id>, input:
<name or [names]>}` (or a list of those), plus `loras:`, the LoRA loaders (the character one gets the trained
LoRA and each row's strength; the others keep theirs or get a fixed one). Any graph works this way, the
packaged templates included; `problems` names every unbound, ambiguous or dangling field before a job is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..files import read_yaml
from .errors import WorkflowError
from .validation import input_specs, is_link

# field -> what it sets (the scaffold's comments); lora and lora_strength come from `loras:`
FIELDS = {
    "prompt": "the row's prompt text (every text input of the positive encoder)",
    "negative": "the negative prompt text",
    "seed": "the job's seed",
    "steps": "sampler steps",
    "cfg": "classifier-free guidance scale",
    "denoise": "how much of an input picture is repainted (0..1)",
    "width": "image width: the empty latent and every size input of the encoders",
    "height": "image height: the empty latent and every size input of the encoders",
    "checkpoint": "checkpoint file name",
    "filename_prefix": "where the server saves the images",
    "image": "the uploaded input picture (file name on the server)",
    "mask": "the uploaded mask picture, where the graph loads one separately",
    "length": "video frames (Wan: 4k+1)",
    "fps": "video frames per second",
    "switch_step": "the step where a two-expert video model (Wan2.2 A14B) hands over to its low-noise expert",
}
LORA_FIELDS = ("lora", "lora_strength")
FIXED = "fixed lora"  # a loader that is only listed (checked to exist) or given a fixed strength
VALUE_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
FIX = ("edit the bindings file: `field: {node: <node title or id>, input: <input name>}` "
       "(examples: pistachio_nb/workflows/*.bindings.yaml)")


class BindingsError(WorkflowError):
    """A bindings file is unreadable, or its fields do not fit the workflow or the server's nodes."""


@dataclass(frozen=True)
class Binding:
    """One place a field is written: a node (its title, or its id) and the input names set there.

    `value` is a fixed value the bindings file gives (a second LoRA's strength); None = the caller's value.
    """

    field: str
    node: str
    inputs: tuple[str, ...]
    value: float | None = None


@dataclass(frozen=True)
class Bindings:
    """A workflow's bindings, and the file they came from (named in every error)."""

    source: str
    items: tuple[Binding, ...]

    @property
    def fields(self) -> set[str]:
        return {b.field for b in self.items if b.field != FIXED}

    def of(self, field: str) -> list[Binding]:
        return [b for b in self.items if b.field == field]

    @property
    def fixed(self) -> list[Binding]:
        return [b for b in self.items if b.field == FIXED and b.value is not None]


def bindings_path(workflow_file: str | Path) -> Path:
    """`x.json` -> `x.bindings.yaml` beside it."""
    path = Path(workflow_file)
    return path.with_name(f"{path.stem}.bindings.yaml")


def _names(value: Any, where: str) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise BindingsError(f"{where}: expected an input name or a list of input names, got {value!r}", fix=FIX)
    return tuple(names)


def _node_ref(entry: dict[str, Any], where: str) -> str:
    node = entry.get("node")
    if isinstance(node, bool) or not isinstance(node, (str, int)) or str(node) == "":
        raise BindingsError(f"{where}: `node` must be a node title or id, got {node!r}", fix=FIX)
    return str(node)


def _keys(entry: Any, required: set[str], optional: set[str], where: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise BindingsError(f"{where}: expected a mapping like {{node: ..., input: ...}}, got {entry!r}", fix=FIX)
    unknown, missing = set(entry) - required - optional, required - set(entry)
    if unknown or missing:
        what = "; ".join(filter(None, [f"unknown key(s) {sorted(unknown)}" if unknown else "",
                                       f"missing {sorted(missing)}" if missing else ""]))
        raise BindingsError(f"{where}: {what} (keys: {', '.join(sorted(required | optional))})", fix=FIX)
    return entry


def _lora_items(entries: Any, source: str) -> list[Binding]:
    if not isinstance(entries, list):
        raise BindingsError(f"{source}: `loras` must be a list of loaders", fix=FIX)
    items, characters = [], 0
    for i, raw in enumerate(entries):
        where = f"{source}: loras[{i}]"
        entry = _keys(raw, {"node", "name_input", "strength_inputs"}, {"character", "strength"}, where)
        node, strengths = _node_ref(entry, where), _names(entry["strength_inputs"], f"{where}.strength_inputs")
        if entry.get("character") is True:
            if "strength" in entry:
                raise BindingsError(f"{where}: the character LoRA takes each row's strength; drop `strength`", fix=FIX)
            characters += 1
            items += [Binding("lora", node, _names(entry["name_input"], f"{where}.name_input")),
                      Binding("lora_strength", node, strengths)]
        elif entry.get("character", False) is not False:
            raise BindingsError(f"{where}: `character` must be true or false", fix=FIX)
        elif "strength" in entry:
            strength = entry["strength"]
            if isinstance(strength, bool) or not isinstance(strength, (int, float)):
                raise BindingsError(f"{where}: `strength` must be a number, got {strength!r}", fix=FIX)
            items.append(Binding(FIXED, node, strengths, float(strength)))
        else:
            items.append(Binding(FIXED, node, ()))  # listed so validation checks the node is there
    if characters > 1:
        raise BindingsError(f"{source}: {characters} loaders say `character: true`; the trained LoRA goes into one",
                            fix="keep `character: true` on one loader; give the others a fixed `strength`")
    return items


def parse_bindings(data: Any, source: str) -> Bindings:
    """Bindings from parsed YAML; unknown fields, keys or shapes raise naming `source` and the field."""
    if not isinstance(data, dict):
        raise BindingsError(f"{source}: expected a mapping of field -> {{node, input}}, got {type(data).__name__}", fix=FIX)
    items: list[Binding] = []
    for field, value in data.items():
        if field == "loras":
            items += _lora_items(value, source)
            continue
        if field not in FIELDS:
            hint = " (bind LoRAs under `loras:`)" if field in LORA_FIELDS else ""
            raise BindingsError(f"{source}: unknown field {field!r}{hint}", fix=f"fields: {', '.join([*FIELDS, 'loras'])}")
        entries = value if isinstance(value, list) else [value]
        if not entries:
            raise BindingsError(f"{source}: field {field!r} binds nothing", fix="remove the line, or name a node and input")
        for i, raw in enumerate(entries):
            where = f"{source}: field {field!r}" + (f"[{i}]" if isinstance(value, list) else "")
            entry = _keys(raw, {"node", "input"}, set(), where)
            items.append(Binding(field, _node_ref(entry, where), _names(entry["input"], f"{where}.input")))
    return Bindings(source, tuple(items))


def load_bindings(path: str | Path) -> Bindings:
    """Read a bindings file strictly (`pistachio_nb.yaml_load`: plain data, no duplicate keys)."""
    fix = ("`pistachio workflows pull` writes one beside each pulled workflow; for another file: "
           "`from pistachio_nb.comfy.bindings_guess import write_scaffold; write_scaffold('x.json')`, then check it")
    data = read_yaml(path, BindingsError, "bindings file", fix=fix)
    return parse_bindings(data, str(path))


def resolve_node(graph: dict[str, Any], ref: str) -> tuple[str | None, str]:
    """(node id, "") for a node title or id, or (None, why not): missing, or a title several nodes share."""
    ids = list(dict.fromkeys([*([ref] if ref in graph else []),
                              *(nid for nid, n in graph.items() if str(n.get("_meta", {}).get("title", "")) == ref)]))
    if len(ids) == 1:
        return ids[0], ""
    if ids:
        return None, f"ambiguous: nodes {', '.join(ids)} are all called {ref!r} (use the node id, or rename them)"
    return None, f"node {ref!r} is not in the workflow (no node with that id or title)"


def _input_problem(node: dict[str, Any], name: str, object_info: dict[str, Any] | None) -> str:
    """Why input `name` of `node` cannot take a value, or "" when it can."""
    cls = node["class_type"]
    if object_info is None:
        return "" if name in node.get("inputs", {}) and not is_link(node["inputs"][name]) else \
            f"has no value input {name!r} (inputs: {', '.join(node.get('inputs', {}))})"
    if cls not in object_info:
        return f"is a {cls}, which this server does not have (install its custom node pack)"
    specs = {n: s for n, s, _ in input_specs(object_info[cls])}
    if name not in specs:
        return f"({cls}) has no input {name!r} on this server (inputs: {', '.join(specs)})"
    kind = specs[name][0]
    if not isinstance(kind, list) and kind not in VALUE_TYPES:
        return f"({cls}) input {name!r} is a {kind} connection, not a value"
    return ""


def problems(bindings: Bindings, graph: dict[str, Any], fields: set[str] | list[str],
             object_info: dict[str, Any] | None = None) -> list[str]:
    """Every reason `fields` (plus the fixed LoRAs) cannot be filled: unbound, ambiguous or dangling bindings.

    With the server's `/object_info`, each input must exist on its node class and take a value (not a link).
    """
    found = [f"{field}: unbound (no entry in the bindings file)" for field in fields if field not in bindings.fields]
    for b in bindings.items:
        if b.field not in fields and b.field != FIXED:
            continue
        nid, why = resolve_node(graph, b.node)
        if nid is None:
            found.append(f"{b.field}: {why}")
            continue
        found += [f"{b.field}: node {b.node!r} (id {nid}) {msg}" for name in b.inputs
                  if (msg := _input_problem(graph[nid], name, object_info))]
    return found


def check_bindings(bindings: Bindings, graph: dict[str, Any], fields: set[str] | list[str],
                   object_info: dict[str, Any] | None = None, where: str = "workflow") -> None:
    """Raise one BindingsError listing every problem (see `problems`), before any job is sent."""
    found = problems(bindings, graph, fields, object_info)
    if found:
        raise BindingsError(f"{bindings.source} does not fit {where}: {len(found)} problem(s)\n  " + "\n  ".join(found),
                            fix=FIX)


def bound_nodes(bindings: Bindings, graph: dict[str, Any], field: str) -> list[str]:
    """The node ids a field writes to (the references are checked: see `check_bindings`)."""
    check_bindings(bindings, graph, [field])
    return list(dict.fromkeys(resolve_node(graph, b.node)[0] for b in bindings.of(field)))


def given(values: dict[str, Any]) -> list[str]:
    """The fields a fill sets: those whose value is not None (None keeps the graph's own)."""
    return [k for k, v in values.items() if v is not None]


def assignments(bindings: Bindings, graph: dict[str, Any], values: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(node id, input, value) for each given value (None = keep the graph's) and each fixed LoRA strength."""
    unknown = sorted(set(values) - set(FIELDS) - set(LORA_FIELDS))
    if unknown:
        raise BindingsError(f"unknown workflow field(s) {unknown}", fix=f"fields: {', '.join([*FIELDS, *LORA_FIELDS])}")
    fields = given(values)
    check_bindings(bindings, graph, fields)
    out = [(resolve_node(graph, b.node)[0], name, values[b.field]) for b in bindings.items if b.field in fields
           for name in b.inputs]
    return out + [(resolve_node(graph, b.node)[0], name, b.value) for b in bindings.fixed for name in b.inputs]
