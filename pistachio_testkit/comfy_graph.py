"""Graph helpers of the imitation: ComfyUI's execution order and its cache signatures (rules of 0.3.64, own code).

ComfyUI runs a topological "dissolve": of the nodes whose inputs are ready it prefers an output node,
then a node feeding an output, then one two steps before an output, else the first ready one. Its
classic cache keys every node by class, literal inputs and upstream keys (not by node id).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def is_link(value: Any) -> bool:
    """An input wired to another node's output: `[node_id, output_index]`."""
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def links(graph: dict[str, Any], nid: str) -> list[str]:
    return [v[0] for v in graph[nid].get("inputs", {}).values() if is_link(v) and v[0] in graph]


def execution_order(graph: dict[str, Any], outputs: list[str], is_output: Callable[[str], bool],
                    cached: set[str] = frozenset()) -> list[str]:
    """The order ComfyUI's ExecutionList stages nodes for `outputs`; nodes cached at the start are left out."""
    pending: dict[str, None] = {}  # insertion order matters: ready nodes are scanned in it
    blocks: dict[str, int] = {}
    blocking: dict[str, dict[str, None]] = {}
    for out in outputs:
        stack, edges = [out], []
        while stack:  # depth-first from the end of the list, as ComfyUI's add_node
            nid = stack.pop()
            if nid in pending:
                continue
            pending[nid], blocks[nid], blocking[nid] = None, 0, {}
            for src in links(graph, nid):
                if src not in cached:
                    stack.append(src)
                    edges.append((src, nid))
        for src, dst in edges:
            if dst not in blocking[src]:
                blocking[src][dst] = None
                blocks[dst] += 1
    order = []
    while pending:
        ready = [n for n in pending if blocks[n] == 0]
        pick = _pick(ready, blocking, is_output)
        order.append(pick)
        del pending[pick]
        for dst in blocking.pop(pick):
            blocks[dst] -= 1
    return order


def _pick(ready: list[str], blocking: dict[str, dict[str, None]], is_output: Callable[[str], bool]) -> str:
    for nid in ready:
        if is_output(nid):
            return nid
    for nid in ready:
        if any(is_output(b) for b in blocking[nid]):
            return nid
    for nid in ready:
        if any(is_output(b2) for b in blocking[nid] for b2 in blocking.get(b, {})):
            return nid
    return ready[0]


def signatures(graph: dict[str, Any], input_dir: Path) -> dict[str, str]:
    """Node id -> cache key: class, literal inputs and upstream keys; LoadImage adds its file's hash."""
    keys: dict[str, str] = {}

    def key(nid: str, seen: tuple[str, ...] = ()) -> str:
        if nid not in keys:
            node = graph[nid]
            inputs = {}
            for name, value in sorted(node.get("inputs", {}).items()):
                linked = is_link(value) and value[0] in graph and value[0] not in seen
                inputs[name] = ["link", key(value[0], (*seen, nid)), value[1]] if linked else value
            if node.get("class_type") == "LoadImage":
                path = input_dir / str(node.get("inputs", {}).get("image", ""))
                inputs["__file__"] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
            text = json.dumps([node.get("class_type"), inputs], sort_keys=True, default=str)
            keys[nid] = hashlib.sha256(text.encode()).hexdigest()
        return keys[nid]

    for nid in graph:
        key(nid)
    return keys


def upstream(graph: dict[str, Any], nid: str) -> list[str]:
    """`nid` and every node it depends on, each after its inputs."""
    order: list[str] = []

    def visit(n: str) -> None:
        if n not in order:
            for src in links(graph, n):
                visit(src)
            order.append(n)

    visit(nid)
    return order
