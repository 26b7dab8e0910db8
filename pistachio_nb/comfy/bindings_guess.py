"""Best-guess bindings for a workflow someone else built, written as a commented scaffold to check by hand.

Guesses follow the graph, not node class names: the prompt is every text input of the encoders that
feed a sampler's `positive` (through pass-through nodes such as ApplyInstantID), the seed is a `seed` or
`noise_seed` value, the size is the empty latent's plus the encoders' size inputs, and so on. Where two
nodes fit, the scaffold says AMBIGUOUS and lists them; where none does, it says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..files import write_text
from .bindings import FIELDS, Binding, Bindings, BindingsError, bindings_path
from .validation import input_specs, is_link
from .workflow import load_workflow

SCALARS = {"seed": ("seed", "noise_seed"), "steps": ("steps",), "cfg": ("cfg",), "denoise": ("denoise",),
           "checkpoint": ("ckpt_name",), "filename_prefix": ("filename_prefix",)}
SIZE_INPUTS = {"width": ("width", "target_width"), "height": ("height", "target_height")}
CHARACTER_WORDS = ("character", "pistachio")  # a loader's title or file naming the trained LoRA


@dataclass(frozen=True)
class Loader:
    """A LoRA loader node: where its file name and strengths are."""

    node: str
    name_input: str
    strength_inputs: tuple[str, ...]


@dataclass(frozen=True)
class Guess:
    """Per field, the alternatives that fit (each a full list of bindings; the first is written), and the LoRA loaders."""

    options: dict[str, list[list[Binding]]]
    loaders: list[Loader]
    characters: list[str]  # loader ids that may be the character LoRA (one = decided)

    @property
    def ambiguous(self) -> list[str]:
        return [f for f, opts in self.options.items() if len(opts) > 1] + (["lora"] if len(self.characters) > 1 else [])

    @property
    def unbound(self) -> list[str]:
        return [f for f, opts in self.options.items() if not opts] + ([] if self.characters else ["lora"])


def _key(node_id: str) -> tuple[int, str]:
    return (int(node_id), "") if node_id.isdigit() else (1 << 62, node_id)


def _values(node: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in node.get("inputs", {}).items() if not is_link(v)}


def _texts(node: dict[str, Any]) -> tuple[str, ...]:
    return tuple(k for k, v in _values(node).items() if isinstance(v, str) and (k.startswith("text") or k == "prompt"))


def _samplers(graph: dict[str, Any]) -> list[str]:
    """Nodes that denoise a latent under positive and negative conditioning."""
    return [nid for nid, n in graph.items() if all(is_link(n["inputs"].get(k)) for k in ("positive", "negative"))
            and any(k.startswith("latent") and is_link(v) for k, v in n["inputs"].items())]


def _encoders(graph: dict[str, Any], side: str) -> list[str]:
    """Text encoders feeding the samplers' `side` input, followed through pass-through and combining nodes."""
    found, seen = [], set()
    todo = [graph[s]["inputs"][side][0] for s in _samplers(graph)]
    while todo:
        nid = todo.pop()
        if nid in seen or nid not in graph:
            continue
        seen.add(nid)
        node = graph[nid]
        if _texts(node):
            found.append(nid)
            continue
        links = {k: v for k, v in node["inputs"].items() if is_link(v)}
        follow = [links[side]] if side in links else [v for k, v in links.items() if "conditioning" in k]
        todo += [link[0] for link in follow]
    return sorted(found, key=_key)


def _scalar(graph: dict[str, Any], field: str) -> list[list[Binding]]:
    opts = []
    for nid in sorted(graph, key=_key):
        names = [n for n in SCALARS[field] if n in _values(graph[nid])]
        if names:
            opts.append([Binding(field, nid, (names[0],))])
    return opts


def _size(graph: dict[str, Any], field: str, encoders: list[str]) -> list[list[Binding]]:
    """The empty latent's size (one node) plus every size input of the prompt encoders."""
    latents = [nid for nid in sorted(graph, key=_key) if {"width", "height", "batch_size"} <= set(_values(graph[nid]))]
    on_encoders = [Binding(field, nid, names) for nid in encoders
                   if (names := tuple(n for n in SIZE_INPUTS[field] if n in _values(graph[nid])))]
    if not latents:
        return [on_encoders] if on_encoders else []
    return [[Binding(field, nid, (field,)), *on_encoders] for nid in latents]


def _pictures(graph: dict[str, Any], object_info: dict[str, Any] | None, mask: bool) -> list[list[Binding]]:
    """Nodes loading an uploaded file by name (`image` value; with /object_info: an upload combo); masks have `channel`."""
    opts = []
    for nid in sorted(graph, key=_key):
        node, info = graph[nid], (object_info or {}).get(graph[nid]["class_type"])
        if not isinstance(_values(node).get("image"), str) or ("channel" in node["inputs"]) != mask:
            continue
        if info is None or any(n == "image" and isinstance(s[-1], dict) and s[-1].get("image_upload")
                               for n, s, _ in input_specs(info)):
            opts.append([Binding("mask" if mask else "image", nid, ("image",))])
    return opts


def _loaders(graph: dict[str, Any]) -> tuple[list[Loader], list[str]]:
    loaders = [Loader(nid, "lora_name", tuple(k for k, v in _values(graph[nid]).items()
                                             if k.startswith("strength") and isinstance(v, (int, float))))
               for nid in sorted(graph, key=_key) if isinstance(_values(graph[nid]).get("lora_name"), str)]
    named = [ld.node for ld in loaders if any(w in f"{_title(graph[ld.node])} {graph[ld.node]['inputs']['lora_name']}"
                                             .lower() for w in CHARACTER_WORDS)]
    return loaders, (named if len(named) == 1 else [ld.node for ld in loaders])


def _title(node: dict[str, Any]) -> str:
    return str(node.get("_meta", {}).get("title", ""))


def guess_bindings(graph: dict[str, Any], object_info: dict[str, Any] | None = None) -> Guess:
    """Every field's candidate nodes in an API-format graph (node ids), from its wiring and input names."""
    positive, negative = _encoders(graph, "positive"), _encoders(graph, "negative")
    options: dict[str, list[list[Binding]]] = {
        "prompt": [[Binding("prompt", nid, _texts(graph[nid]))] for nid in positive],
        "negative": [[Binding("negative", nid, _texts(graph[nid]))] for nid in negative],
        **{f: _scalar(graph, f) for f in SCALARS},
        **{f: _size(graph, f, positive + negative) for f in SIZE_INPUTS},
        "image": _pictures(graph, object_info, mask=False), "mask": _pictures(graph, object_info, mask=True),
    }
    return Guess({f: options[f] for f in FIELDS if f in options}, *_loaders(graph))  # video fields: bound by hand


def guessed(graph: dict[str, Any], fields: list[str]) -> Bindings:
    """The first guess of each field as Bindings; a requested field that is ambiguous or unbound raises."""
    guess = guess_bindings(graph)
    doubtful = [f for f in fields if f in guess.ambiguous or f in guess.unbound
                or (f == "lora_strength" and "lora" in guess.ambiguous + guess.unbound)]
    if doubtful:
        raise BindingsError(f"workflow without a bindings file: cannot tell where {', '.join(doubtful)} go "
                            f"(ambiguous: {', '.join(guess.ambiguous) or 'none'}; unbound: {', '.join(guess.unbound) or 'none'})",
                            fix="give the workflow a bindings file (`write_scaffold`, then check it) and pass it")
    items = [b for opts in guess.options.values() if opts for b in opts[0]]
    loras = [ld for ld in guess.loaders if ld.node == guess.characters[0]] if guess.characters else []
    items += [b for ld in loras for b in (Binding("lora", ld.node, (ld.name_input,)),
                                          Binding("lora_strength", ld.node, ld.strength_inputs))]
    return Bindings("(guessed from the graph)", tuple(items))


def node_ref(graph: dict[str, Any], node_id: str) -> str:
    """How a bindings file names a node: its title where that is unique (and no other node's id), else its id."""
    title = _title(graph[node_id])
    unique = title and title not in graph and sum(_title(n) == title for n in graph.values()) == 1
    return title if unique else node_id


def _entry(graph: dict[str, Any], b: Binding) -> str:
    names = b.inputs[0] if len(b.inputs) == 1 else list(b.inputs)
    return f"{{node: {json.dumps(node_ref(graph, b.node))}, input: {json.dumps(names)}}}"


def _described(graph: dict[str, Any], node_id: str) -> str:
    return f"{node_id} {graph[node_id]['class_type']} {json.dumps(_title(graph[node_id]))}"


def _field_lines(graph: dict[str, Any], field: str, opts: list[list[Binding]]) -> list[str]:
    lines = [f"# {field}: {FIELDS[field]}"]
    if not opts:
        return [*lines, "#   not bound: no node fits (needed only where a stage sets it)",
                f"# {field}: {{node: <title or id>, input: <input name>}}", ""]
    nodes = [opt[0].node for opt in opts]
    if len(opts) > 1:
        lines.append(f"#   AMBIGUOUS: {len(opts)} nodes fit: {'; '.join(_described(graph, n) for n in nodes)}. "
                     "The first is written below: check it")
    else:
        lines.append(f"#   found: {_described(graph, nodes[0])}")
    entries = [_entry(graph, b) for b in opts[0]]
    return [*lines, f"{field}: {entries[0]}" if len(entries) == 1 else f"{field}:", *(
        [f"  - {e}" for e in entries] if len(entries) > 1 else []), ""]


def _lora_lines(graph: dict[str, Any], guess: Guess) -> list[str]:
    lines = ["# LoRA loaders: the `character: true` one gets comfy_lora and each row's lora_strength; the others",
             "# keep their own LoRA file, at their own strength unless you add e.g. `strength: 0.5`."]
    if not guess.loaders:
        return [*lines, "#   not bound: the workflow has no LoRA loader (a node with a lora_name value)", "# loras: []", ""]
    if len(guess.characters) > 1:
        lines.append(f"#   AMBIGUOUS: which loader is the character LoRA? {len(guess.characters)} fit: "
                     f"{'; '.join(_described(graph, n) for n in guess.characters)}. The first is marked: check it")
    lines.append("loras:")
    for ld in guess.loaders:
        now = ", ".join(f"{k}={graph[ld.node]['inputs'][k]}" for k in ("lora_name", *ld.strength_inputs))
        flag = ", character: true" if ld.node == guess.characters[0] else ""
        lines.append(f"  - {{node: {json.dumps(node_ref(graph, ld.node))}, name_input: {ld.name_input}, "
                     f"strength_inputs: {json.dumps(list(ld.strength_inputs))}{flag}}}  # now: {now}")
    return [*lines, ""]


def scaffold_text(graph: dict[str, Any], name: str, guess: Guess) -> str:
    """The bindings file `workflows pull` writes: best guesses as YAML, candidates and doubts as comments."""
    head = [f"# Bindings for {name}: which node input each pistachio field sets.",
            "# Written from best guesses by `pistachio workflows pull` (never overwritten once it exists): check",
            "# every entry, above all the AMBIGUOUS ones. node: a node's title (as ComfyUI shows it) or its id;",
            "# input: an input name or a list of them. A field may bind several nodes as a list of entries.", ""]
    body = [line for field, opts in guess.options.items() for line in _field_lines(graph, field, opts)]
    return "\n".join([*head, *body, *_lora_lines(graph, guess)])


def write_scaffold(workflow_file: str | Path, object_info: dict[str, Any] | None = None) -> tuple[Path, Guess | None]:
    """Write `x.bindings.yaml` beside `x.json` unless one exists (then it is kept as is: the guess is None)."""
    path = bindings_path(workflow_file)
    if path.exists():
        return path, None
    graph = load_workflow(workflow_file)
    guess = guess_bindings(graph, object_info)
    write_text(path, scaffold_text(graph, Path(workflow_file).name, guess))
    return path, guess
