"""The comparison grid drawn by ComfyUI: the user's own workflow, filled per plan row through its bindings file.

Production images come from that workflow, so the checkpoint is chosen on what it makes (trainer samples can
look nothing like ComfyUI's: ostris/ai-toolkit#309). Each checkpoint's LoRA is copied into ComfyUI's loras
folder under its content name (`publish.content_name`; the alias production uses is left alone), each row's
graph is checked against the server's nodes, run, and its first output image saved as the row's cache file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from tqdm.auto import tqdm

from ..comfy.bindings import Bindings, BindingsError, bindings_path, bound_nodes, check_bindings, load_bindings, problems
from ..comfy.client import ComfyClient
from ..comfy.errors import ComfyError, WorkflowError
from ..comfy.publish import _copy, _listed, _source_sidecar, content_name
from ..comfy.workflow import bypass, check_workflow, fill, load_workflow, workflow_path
from ..downloads import sha256_file
from ..files import write_bytes
from ..paths import resolve

if TYPE_CHECKING:
    from .generate_grid import SamplerSettings

REQUIRED = ("prompt", "seed", "lora", "lora_strength")  # what a grid row varies: without them every cell is alike
OPTIONAL = ("negative", "steps", "cfg", "width", "height", "checkpoint", "filename_prefix")  # set where bound
IMAGE_TIMEOUT = 900.0  # seconds per image: a cold SDXL load on a pod takes a minute or two
REQUEST_TIMEOUT = (3.05, 30.0)  # (connect, read) seconds per API request
PREFIX = "pistachio/grid"
FIX_WORKFLOW = ("in ComfyUI use 'Save (API Format)' (or `pistachio workflows pull`) and set grid_workflow to that "
                "file, or to a template name: txt2img_lora")


@dataclass(frozen=True)
class ComfyGrid:
    """Where and how the grid is drawn in ComfyUI; `template` and `bindings` were read and checked at planning."""

    url: str
    models_dir: Path
    workflow: Path
    checkpoint: str
    trigger: str
    template: dict[str, Any] = field(compare=False, repr=False)
    bindings: Bindings = field(compare=False, repr=False)

    def graph(self, settings: SamplerSettings, lora: str | None, prompt: str, seed: int, scale: float) -> dict[str, Any]:
        """The workflow filled for one grid cell; without a LoRA (the base row) the character loader is left out."""
        values = dict(prompt=prompt, seed=int(seed), lora=lora, lora_strength=float(scale), negative=settings.negative_prompt,
                      steps=settings.steps, cfg=settings.guidance_scale, width=settings.width, height=settings.height,
                      checkpoint=self.checkpoint or None, filename_prefix=PREFIX)
        filled = fill(self.template, self.bindings, **{k: v for k, v in values.items() if k in self.bindings.fields})
        for node_id in [] if lora else bound_nodes(self.bindings, self.template, "lora"):
            filled = bypass(filled, node_id)
        return filled


def _workflow_file(name: str) -> Path:
    if resolve(name).is_file():
        return resolve(name)
    try:
        return workflow_path(name)
    except WorkflowError:
        raise WorkflowError(f"grid_workflow {name!r}: no file {resolve(name)} and no packaged template of that name",
                            fix=FIX_WORKFLOW) from None


def comfy_grid(p: Any) -> ComfyGrid:
    """The ComfyUI grid backend from 04's params: workflow and bindings read and checked here, before any render."""
    path = _workflow_file(p.grid_workflow)
    if not bindings_path(path).is_file():
        raise BindingsError(f"grid_workflow {path} has no bindings file {bindings_path(path)}",
                            fix="`pistachio workflows pull` writes one beside each pulled workflow; or "
                                "`from pistachio_nb.comfy.bindings_guess import write_scaffold; write_scaffold('x.json')`")
    template, bindings = load_workflow(path), load_bindings(bindings_path(path))
    found = problems(bindings, template, REQUIRED)
    if found:
        raise BindingsError(f"grid_workflow {path}: {bindings.source} cannot fill the grid ({len(found)} problem(s))\n  "
                            + "\n  ".join(found),
                            fix="bind prompt and seed, and mark the character's LoRA loader `character: true` under `loras:`")
    return ComfyGrid(p.comfy_url, resolve(p.comfy_models_dir), path, p.comfy_checkpoint, p.trigger, template, bindings)


def place_lora(client: ComfyClient, grid: ComfyGrid, source: Path) -> str:
    """Copy a checkpoint's LoRA into ComfyUI's loras folder under its content name (once), check it is listed."""
    sha = sha256_file(source)
    name, loras = content_name(grid.trigger, sha), grid.models_dir / "loras"
    if not ((loras / name).is_file() and sha256_file(loras / name) == sha):
        loras.mkdir(parents=True, exist_ok=True)
        _copy(source, loras / name, _source_sidecar(source), published={"sha256": sha, "source": str(source)})
    _listed(client, name, grid.models_dir)
    return name


def _render(client: ComfyClient, graph: dict[str, Any]) -> bytes:
    """Run one graph; its first output image as PNG bytes. A prompt past the timeout is cancelled, not left queued."""
    prompt_id = client.submit(graph)
    try:
        result = client.wait(prompt_id, IMAGE_TIMEOUT)
    except TimeoutError:
        client.cancel(prompt_id)
        raise
    refs = [r for r in result.images if r.type == "output"] or result.images
    if not refs:
        raise ComfyError(f"{client.url}: prompt {prompt_id} finished without an image",
                         fix="the grid workflow needs a SaveImage (or PreviewImage) node")
    return client.view(refs[0])


def render_comfy_grid(todo: pd.DataFrame, settings: SamplerSettings) -> None:
    """Draw every row of `todo` in ComfyUI and save it as the row's `file` (bindings checked on the server first)."""
    grid = settings.comfy
    where = f"grid_workflow {grid.workflow} on {grid.url}"
    with ComfyClient(grid.url, timeout=REQUEST_TIMEOUT) as client:
        info = client.object_info()
        check_bindings(grid.bindings, grid.template, grid.bindings.fields & {*REQUIRED, *OPTIONAL}, info, where=where)
        bar = tqdm(total=len(todo), desc="generating in ComfyUI")
        for path, group in todo.groupby("path", dropna=False, sort=False):
            lora = None if pd.isna(path) else place_lora(client, grid, Path(path))
            if lora:
                info = client.object_info()  # now listing the new file among the LoraLoader's choices
            for row in group.itertuples():
                graph = grid.graph(settings, lora, row.prompt, row.seed, row.scale)
                check_workflow(graph, info, where=where)
                write_bytes(row.file, _render(client, graph))
                bar.update()
        bar.close()
