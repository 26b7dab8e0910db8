"""Params profiles (`params/<name>.yaml`): load, merge with --set overrides, validate before any run starts."""

from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ParamsError
from .files import read_yaml
from .params import NotebookParams, all_params_models, params_model_for
from .secrets import refuse_secret_keys
from .yaml_load import StrictYAMLError, load_strict, shorten

RESERVED = ("common", "services", "serve")  # top-level keys that are not notebook sections (serve: the generation API)


@dataclass(frozen=True)
class Profile:
    """A loaded profile: its file, shared values, per-notebook sections and the services to start (demo)."""

    path: Path
    common: dict[str, Any]
    sections: dict[str, dict[str, Any]]
    services: dict[str, Any] = field(default_factory=dict)
    serve: dict[str, Any] = field(default_factory=dict)  # `pistachio serve` settings (pistachio_nb.serve.params)

    @property
    def name(self) -> str:
        return self.path.stem


def load_profile(path: str | Path) -> Profile:
    """Read and structurally check a profile: known sections only, mappings only, no secrets."""
    path = Path(path)
    data = read_yaml(path, ParamsError, "params profile", "pass --params params/demo.yaml or params/pod.yaml")
    if not data:
        raise ParamsError(f"{path}: the profile is empty", fix="see params/demo.yaml for the shape (common: plus one section per notebook)")
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of sections", fix="see params/demo.yaml for the shape")
    known = all_params_models()
    sections: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        value = {} if value is None else value  # `01_dataset:` with nothing under it is an empty section
        if not isinstance(value, dict):
            raise ParamsError(f"{path}: section {shorten(repr(key), 80)} must be a mapping, got {type(value).__name__}")
        refuse_secret_keys(value, f"{path} [{key}]")
        if key not in RESERVED and key not in known and value:
            raise ParamsError(f"{path}: unknown section {shorten(repr(key), 80)}", fix=f"sections are common, services, serve, {', '.join(sorted(known))}")
        if key not in RESERVED and value:
            sections[key] = value
    all_fields = {f for model in known.values() for f in model.model_fields}
    common = data.get("common") or {}
    for key in common:
        if key not in all_fields:
            raise ParamsError(f"{path} [common]: unknown parameter {shorten(repr(key), 80)}: no notebook has such a field")
    return Profile(path, dict(common), sections, dict(data.get("services") or {}), dict(data.get("serve") or {}))


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """`--set key=value` pairs; values are read as YAML scalars (`3`, `true`, `[a, b]`)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ParamsError(f"--set {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        try:  # the same strict loader as profiles: an alias bomb in --set is refused too
            out[key.strip()] = load_strict(raw) if raw.strip() else ""
        except StrictYAMLError as err:
            raise ParamsError(f"--set {shorten(key.strip(), 80)}: value is not accepted as YAML: {err}") from None
    refuse_secret_keys(out, "--set")
    return out


def notebook_defaults(notebook: Path) -> dict[str, Any]:
    """The literal defaults of a notebook's `parameters` cell (papermill's own parser)."""
    import papermill as pm

    found = pm.inspect_notebook(str(notebook))
    out = {}
    for name, info in found.items():
        try:
            out[name] = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError):
            raise ParamsError(f"{notebook.name}: default of {name!r} is not a plain literal: {info['default']}") from None
    return out


def did_you_mean(key: str, fields_by_notebook: dict[str, set[str]]) -> str:
    """A fix line for an unknown parameter: the closest field names and which notebooks have them."""
    owners: dict[str, list[str]] = {}
    for name, fields in fields_by_notebook.items():
        for f in fields:
            owners.setdefault(f, []).append(name)
    close = difflib.get_close_matches(key, owners, n=3, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(f"{c!r} ({', '.join(owners[c])})" for c in close) + "?"
    return "fields: " + "; ".join(f"{name}: {', '.join(sorted(fields))}" for name, fields in fields_by_notebook.items())


def resolve_values(notebook: Path, profile: Profile, sets: dict[str, Any], strict_sets: bool = True,
                   provided: dict[str, Any] | None = None, check_paths: bool = True) -> tuple[dict, NotebookParams]:
    """Values papermill injects and the validated params: cell defaults < common < section < services < --set."""
    model = params_model_for(notebook.stem)
    fields = set(model.model_fields)
    section = profile.sections.get(notebook.stem, {})
    for key in section:
        if key not in fields:
            raise ParamsError(
                f"{profile.path} [{notebook.stem}]: unknown parameter {shorten(repr(key), 80)}",
                fix=f"fields of {notebook.stem}: {', '.join(sorted(fields))}",
            )
    unknown_sets = [k for k in sets if k not in fields]
    if strict_sets and unknown_sets:
        raise ParamsError(
            f"--set {shorten(unknown_sets[0], 80)}: unknown parameter {shorten(repr(unknown_sets[0]), 80)} for notebook {notebook.stem}",
            fix=did_you_mean(unknown_sets[0], {notebook.stem: fields}),
        )
    inject = {k: v for k, v in profile.common.items() if k in fields}
    inject.update(section)
    inject.update({k: v for k, v in (provided or {}).items() if k in fields})
    inject.update({k: v for k, v in sets.items() if k in fields})
    merged = {**notebook_defaults(notebook), **inject}
    where = f"{profile.path} [{notebook.stem}] (with --set overrides)" if sets else f"{profile.path} [{notebook.stem}]"
    try:
        return inject, model.validate_values(merged, where, check_paths)
    except ParamsError as err:  # pydantic quotes the value given: keep each line short however long that value is
        raise ParamsError("\n".join(shorten(line, 300) for line in str(err).splitlines())) from None
