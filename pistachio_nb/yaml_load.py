"""A strict YAML loader for files people hand us (profiles, manifests, prompts): plain data only.

Stricter than `yaml.safe_load`: no anchors or aliases (an alias bomb expands to gigabytes), no duplicate
keys (the silent last-one-wins hides typos), a nesting cap (PyYAML's composer recurses), and every
problem is one `StrictYAMLError` naming the line, never a raw traceback.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_DEPTH = 64  # nested mappings/sequences; real profiles use 3
MAX_BYTES = 1 << 20  # profiles, manifests and prompt files are a few KiB


class StrictYAMLError(ValueError):
    """The text is not plain YAML data this project accepts (the message names the line)."""


def shorten(text: str, limit: int = 200) -> str:
    """`text` cut to `limit` characters, marking how much was left out (for values quoted in messages)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors, aliases, duplicate keys and deep nesting while composing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise StrictYAMLError(f"line {event.start_mark.line + 1}: YAML anchors and aliases (&name / *name) are "
                                  "not accepted; write the value out")
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise StrictYAMLError(f"line {event.start_mark.line + 1}: nested deeper than {MAX_DEPTH} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):  # noqa: ANN001
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise StrictYAMLError(f"line {key_node.start_mark.line + 1}: merge keys (<<) are not accepted")
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise StrictYAMLError(f"line {line}: duplicate key {shorten(repr(key), 80)} (first at line {seen[key]})")
                seen[key] = line
            except TypeError:  # an unhashable key: PyYAML's own check reports it
                continue
        return super().construct_mapping(node, deep=deep)


def load_strict(text: str) -> Any:
    """Parse YAML text into plain data; anything unsafe or ambiguous raises StrictYAMLError."""
    loader = _StrictLoader(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        raise StrictYAMLError(shorten(str(err), 500)) from None
    except RecursionError:
        raise StrictYAMLError(f"nested deeper than {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()
