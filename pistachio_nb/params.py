"""The params base every notebook's model extends, and the registry that finds each notebook's model.

Each stage's model lives beside its stage (`pistachio_nb/<stage>/params.py`, e.g. `DatasetParams` in
`pistachio_nb.dataset.params`). Defaults live in exactly one place: each notebook's `parameters` cell.
The models declare no defaults, so a field missing from a notebook is an error, and tests check the
cell and the model name the same fields, with the same one-line description.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from .errors import ParamsError
from .paths import Workspace, resolve


def describe_validation_error(err: ValidationError, where: str) -> str:
    """Turn pydantic's error list into lines naming the field, the problem and the value given."""
    lines = [f"invalid parameters in {where}:"]
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"])
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown parameter (typo? not a field of this notebook)"
        if not e["loc"]:  # a cross-field rule: its message names the fields; the input is every value
            lines.append(f"  - {msg.removeprefix('Value error, ')}")
            continue
        given = "" if e["type"] in ("missing", "extra_forbidden") else f" (got {e.get('input')!r})"
        lines.append(f"  - {field}: {msg}{given}")
    return "\n".join(lines)


class NotebookParams(BaseModel):
    """Base for every notebook's params: unknown keys are errors; values are frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # .inf / .nan are never a value
    notebook: ClassVar[str] = ""
    # input files and folders that must exist: field -> "file" | "dir" (checked by validate_values)
    input_paths: ClassVar[dict[str, str]] = {}

    workspace: Path = Field(description="character workspace folder; every stage reads and writes below it")

    @model_validator(mode="after")
    def _inputs_exist(self, info: ValidationInfo) -> Self:
        """Each declared input exists, so a missing folder stops the run before any notebook starts."""
        if not (info.context or {}).get("check_paths"):
            return self
        for name, kind in self.input_paths.items():
            value = getattr(self, name)
            path = resolve(value) if value is not None else None
            if path is not None and not (path.is_dir() if kind == "dir" else path.is_file()):
                raise ValueError(f"{name}: {path} is not an existing {'folder' if kind == 'dir' else 'file'}")
        return self

    @classmethod
    def validate_values(cls, values: Mapping[str, Any], where: str = "", check_paths: bool = True) -> Self:
        """Validate a dict of values; raise ParamsError naming `where` (file/section) and each bad field.

        `check_paths=False` skips the input-exists checks (the runner's pass before its services give paths).
        """
        try:
            return cls.model_validate(dict(values), context={"check_paths": check_paths})
        except ValidationError as err:
            raise ParamsError(
                describe_validation_error(err, where or f"notebook {cls.notebook}"),
                fix="edit the named field in the parameters cell or the params profile",
            ) from None

    @classmethod
    def from_namespace(cls, namespace: Mapping[str, Any]) -> Self:
        """Pick this notebook's fields from the notebook's globals() and validate them."""
        values = {name: namespace[name] for name in cls.model_fields if name in namespace}
        return cls.validate_values(values, f"the parameters cell of {cls.notebook}")

    @property
    def ws(self) -> Workspace:
        """The workspace folder, resolved against the repo root and created."""
        root = resolve(self.workspace)
        root.mkdir(parents=True, exist_ok=True)
        return Workspace(root)


# --------------------------------------------------------------------------- registry
# The stage modules holding the notebooks' models, imported on first use: each imports this module
# for `NotebookParams`, so importing them here at the top would be a cycle.
STAGE_PARAMS_MODULES = tuple(f"pistachio_nb.{stage}.params" for stage in
                             ("pod", "dataset", "captions", "training", "evaluation", "inpainting", "batch", "knowledge",
                              "video"))


def _stage_modules() -> list:
    return [importlib.import_module(name) for name in STAGE_PARAMS_MODULES]


def all_params_models() -> dict[str, type[NotebookParams]]:
    """Notebook name -> its params model (every direct or indirect subclass with a notebook name)."""
    _stage_modules()
    found: dict[str, type[NotebookParams]] = {}
    todo = list(NotebookParams.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.notebook:
            found[cls.notebook] = cls
    return found


def params_model_for(notebook: str) -> type[NotebookParams]:
    """The params model of a notebook by name (`01_dataset` or `01_dataset.ipynb`)."""
    name = Path(notebook).stem
    models = all_params_models()
    if name not in models:
        raise ParamsError(f"no params model for notebook {name!r}", fix=f"known notebooks: {sorted(models)}")
    return models[name]
