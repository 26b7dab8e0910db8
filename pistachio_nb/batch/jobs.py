"""Prompts file (CSV, YAML or JSONL) -> generation jobs with stable ids.

A row: `prompt` (required), `negative`, `seeds` (list, or "1;2;3") or `count`, `lora_strength`,
`size` ("WxH"). Missing values come from the notebook's defaults. A job id hashes everything that
changes the picture, so a rerun recognises finished work and an edited row becomes a new job: the row,
the batch settings, the workflow graph as filled for the job (an edited workflow file under the same name
makes new jobs) and the LoRA's *content* (a retrain that keeps the file name is not mistaken for the old
one): a local LoRA file by its sha256, a ComfyUI LoRA name by what 04_checkpoints published under it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import InputDataError
from ..files import read_yaml
from ..params import describe_validation_error

MAX_SEED = 2**64 - 1


class PromptRow(BaseModel):
    """One row of a prompts file; unknown columns are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1)
    negative: str | None = None
    seeds: list[int] | None = None
    count: int | None = Field(default=None, ge=1, le=1000)
    lora_strength: float | None = Field(default=None, ge=-5.0, le=5.0)
    size: str | None = Field(default=None, pattern=r"^\d+x\d+$")

    @model_validator(mode="after")
    def _seeds_or_count(self) -> PromptRow:
        if self.seeds is not None and self.count is not None:
            raise ValueError("give seeds or count, not both")
        return self

    @field_validator("seeds", mode="before")
    @classmethod
    def _split_seeds(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [s for s in re.split(r"[;\s,]+", value.strip()) if s]
        return [value] if isinstance(value, int) else value

    @field_validator("size")
    @classmethod
    def _size_multiple_of_8(cls, value: str | None) -> str | None:
        if value is not None and any(int(v) % 8 or not 16 <= int(v) <= 8192 for v in value.split("x")):
            raise ValueError("width and height must be multiples of 8 in 16..8192 (e.g. 832x1216)")
        return value

    @field_validator("seeds")
    @classmethod
    def _seed_range(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(not 0 <= s <= MAX_SEED for s in value)):
            raise ValueError(f"seeds must be 1+ integers in 0..{MAX_SEED}")
        return value


@dataclass(frozen=True)
class Defaults:
    """Values for what a row leaves out (from the notebook parameters)."""

    negative: str
    count: int
    base_seed: int
    lora_strength: float
    width: int
    height: int


@dataclass(frozen=True)
class Job:
    job_id: str
    prompt: str
    negative: str
    seed: int
    lora_strength: float
    width: int
    height: int
    source: str  # "prompts.csv:3" — where the row came from

    def fields(self) -> dict[str, Any]:
        return asdict(self)


@cache
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, computed once per (path, size, mtime)."""
    from ..downloads import sha256_file

    return sha256_file(Path(path))


def content_id(value: Any) -> Any:
    """A local file path as `sha256:<hex>` of its content; anything else unchanged."""
    if isinstance(value, str) and value.endswith(".safetensors") and Path(value).is_file():
        stat = Path(value).stat()
        return "sha256:" + _file_sha256(str(Path(value).resolve()), stat.st_size, stat.st_mtime_ns)
    return value


def graph_content(graph: dict[str, Any], lora_content: dict[str, str]) -> dict[str, Any]:
    """The filled graph with each `lora_name` that `lora_content` knows replaced by its content hash."""
    def known(name: str, value: Any) -> Any:
        return f"sha256:{lora_content[value]}" if name == "lora_name" and isinstance(value, str) and value in lora_content else value

    return {nid: {**node, "inputs": {k: known(k, v) for k, v in node.get("inputs", {}).items()}} for nid, node in graph.items()}


def job_id(settings: dict[str, Any], graph: dict[str, Any] | None = None, **values: Any) -> str:
    """12 hex chars of a hash of the row values, the batch settings (model, LoRA content, steps, ...) and the filled graph."""
    settings = {k: content_id(v) for k, v in settings.items()}
    text = json.dumps({"settings": settings, **({"graph": graph} if graph is not None else {}), **values},
                      sort_keys=True, default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def _read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line or item number, raw row dict) for each row of the file, by extension."""
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8")
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or "prompt" not in reader.fieldnames:
            raise InputDataError(f"{path}: no 'prompt' column in the header", fix="first line e.g.: prompt,negative,seeds")
        return [(i + 2, {k: v for k, v in row.items() if v not in ("", None)}) for i, row in enumerate(reader)]
    if suffix == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((n, json.loads(line)))
                except json.JSONDecodeError as err:
                    raise InputDataError(f"{path}:{n}: not valid JSON ({err.msg})") from None
        return rows
    if suffix in (".yaml", ".yml"):
        data = read_yaml(path, InputDataError, "prompts file")
        items = data.get("prompts") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise InputDataError(f"{path}: expected a list of rows (or a 'prompts:' list)")
        return [(n, item if isinstance(item, dict) else {"prompt": item}) for n, item in enumerate(items, 1)]
    raise InputDataError(f"{path}: unknown prompts file type {suffix!r}", fix="use .csv, .yaml or .jsonl")


def _size(row: PromptRow, d: Defaults) -> tuple[int, int]:
    if row.size is None:
        return d.width, d.height
    w, h = (int(v) for v in row.size.split("x"))
    return w, h


def validated_rows(path: Path, model: type[BaseModel]) -> list[tuple[int, Any]]:
    """(line or item number, row as `model`) for each row; every bad row is reported at once (06 and 08)."""
    if not path.is_file():
        raise InputDataError(f"prompts file {path} does not exist", fix="set prompts_file to a CSV, YAML or JSONL file")
    parsed, problems = [], []
    for n, raw in _read_rows(path):
        try:
            parsed.append((n, model.model_validate(raw)))
        except ValidationError as err:
            problems.append(describe_validation_error(err, f"{path.name} row at line/item {n}"))
    if problems:
        raise InputDataError("\n".join(problems), fix=f"edit {path}")
    return parsed


def load_jobs(path: str | Path, defaults: Defaults, settings: dict[str, Any],
              graph_of: Callable[[Job], dict[str, Any]] | None = None, lora_content: dict[str, str] | None = None) -> list[Job]:
    """Expand every row into one job per seed; validate all rows first and report every bad one.

    `graph_of(job)`: the backend's workflow filled for a job (called with an empty job id, so output names
    derived from the id drop out); `lora_content`: LoRA name -> sha256 of what it holds (`published_content`).
    """
    path = Path(path)
    parsed = validated_rows(path, PromptRow)
    jobs: dict[str, Job] = {}
    for n, row in parsed:
        seeds = row.seeds or [defaults.base_seed + i for i in range(row.count or defaults.count)]
        width, height = _size(row, defaults)
        for seed in seeds:
            values = dict(prompt=row.prompt, negative=defaults.negative if row.negative is None else row.negative,
                          seed=seed, lora_strength=defaults.lora_strength if row.lora_strength is None else row.lora_strength,
                          width=width, height=height)
            job = Job(job_id="", source=f"{path.name}:{n}", **values)
            graph = graph_content(graph_of(job), lora_content or {}) if graph_of else None
            jid = job_id(settings, graph, **values)
            jobs.setdefault(jid, replace(job, job_id=jid))
    if not jobs:
        raise InputDataError(f"{path} holds no prompts", fix="add at least one row with a prompt")
    return list(jobs.values())
