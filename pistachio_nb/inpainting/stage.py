"""The 05_inpainting stage: resolve and validate inputs, inpaint, save each result with a sidecar that reproduces it.

The verb `inpaint` (in `run.py`) composes these steps; `prepare` is also public, so the notebook can
show the masks before any model loads. Every saved PNG has `<png>.params.json` holding the concrete params
(image and LoRA paths resolved, the strength/scale actually used) plus hashes of the inputs, so
`reproduce(sidecar)` re-runs it and gets the same pixels for the same seed on the same machine.
The file name carries a hash of params and inputs: a rerun with nothing changed reuses the saved
result instead of recomputing it (delete the PNG to force a new run).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from ..errors import InputDataError
from ..files import atomic_path, read_json, read_jsonl, write_sidecar
from ..paths import resolve
from ..lora import load_lora, resolve_lora
from .diffusers_inpaint import Sampling, load_inpaint_pipeline, native_resolution, run_pipeline, size_multiple
from .masks import Masks, build_masks
from .params import InpaintingParams
from .paste import Crop, crop_for_model, paste_back, plan_crop
from .views import mask_summary, mask_views

# params that never change a result's pixels: left out of its name, so changing them reuses saved results
NOT_PIXELS = {"workspace", "sweep_strengths", "sweep_lora_scales", "comfy_url", "comfy_checkpoint", "comfy_lora",
              "comfy_timeout"}  # fmt: skip


@dataclass(frozen=True)
class Job:
    """Validated inputs of one inpainting: the concrete params, the picture and its masks."""

    params: InpaintingParams
    image: Image.Image
    masks: Masks
    inputs: dict[str, str | None]  # sha256 of the picture, LoRA and mask files

    def mask_views(self):
        """Figure: image | mask | feathered mask | overlay, the check to make before spending GPU time."""
        return mask_views(self.image, self.masks)

    def mask_summary(self):
        """One row of numbers: picture size, share repainted, mask box, pixels in the feathered seam."""
        return mask_summary(self.image, self.masks)


@dataclass(frozen=True)
class Result:
    """One inpainted picture, where it was saved, the crop the model worked on, and whether it was reused."""

    image: Image.Image
    path: Path
    crop: Crop
    cached: bool = False


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def resolve_image(p: InpaintingParams) -> Path:
    """The picture to fix: `image` as a path, or "dataset" = the first image listed in the workspace dataset."""
    if p.image != "dataset":
        path = resolve(p.image)
        if not path.is_file():
            raise InputDataError(f"image {path} does not exist", fix='give an existing picture, or "dataset"')
        return path
    rows = sorted(read_jsonl(p.ws.root / "dataset" / "metadata.jsonl"), key=lambda r: r["file_name"])
    if not rows:
        raise InputDataError(
            f'image: "dataset" but {p.ws.root / "dataset" / "metadata.jsonl"} lists no images',
            fix="run 01_dataset first, or set image to a file path",
        )
    return p.ws.root / "dataset" / rows[0]["file_name"]


def load_image(path: Path) -> Image.Image:
    """The picture as RGB, with a clear error for an unreadable file."""
    try:
        with Image.open(path) as im:
            return ImageOps.exif_transpose(im).convert("RGB")  # upright, as viewers show it and masks are drawn
    except OSError as err:
        raise InputDataError(f"image {path}: cannot read it ({err})", fix="give a PNG or JPEG picture") from None


def prepare(p: InpaintingParams) -> Job:
    """Resolve paths, load the picture, build and check the masks: every input error surfaces here, before any model."""
    image_path, lora = resolve_image(p), resolve_lora(p.lora, p.ws.root)
    image = load_image(image_path)
    masks = build_masks(image.size, p.mask_regions, resolve(p.mask_file) if p.mask_file else None,
                        p.resize_mask, p.mask_grow, p.mask_feather)  # fmt: skip
    concrete = p.model_copy(update={"image": str(image_path), "lora": str(lora) if lora else "none",
                                    "mask_file": str(resolve(p.mask_file)) if p.mask_file else ""})  # fmt: skip
    return Job(concrete, image, masks, input_hashes(concrete))


def load_pipeline(p: InpaintingParams, device: str | None = None):
    """The inpaint pipeline for `p.model` with `p.lora` loaded (call after `prepare`, which resolves the LoRA)."""
    pipe = load_inpaint_pipeline(p.model, device)
    if p.lora != "none":
        load_lora(pipe, resolve(p.lora))
    return pipe


def sampling(p: InpaintingParams) -> Sampling:
    return Sampling(p.prompt, p.negative_prompt, p.strength, p.steps, p.guidance_scale, p.seed, p.lora_scale)


def crop_plan(pipe, job: Job) -> Crop:
    """The crop the model works on: the padded mask box (only_masked) or the whole picture, at native resolution."""
    p = job.params
    return plan_crop(job.masks.soft, p.only_masked, p.crop_padding, native_resolution(pipe), size_multiple(pipe))


def inpaint_image(pipe, job: Job) -> tuple[Image.Image, Crop]:
    """Crop (whole image or padded mask box), inpaint at native resolution, paste back with the feathered mask."""
    p = job.params
    crop = crop_plan(pipe, job)
    model_in = crop_for_model(job.image, crop)
    model_mask = crop_for_model(job.masks.hard, crop, Image.NEAREST)
    out = run_pipeline(pipe, model_in, model_mask, sampling(p))
    return paste_back(job.image, out, job.masks.soft, crop), crop


def output_name(job: Job) -> str:
    """`<stem>-seed<seed>-str<strength>-lora<scale>-<hash>.png`: the knobs, then a hash of all params and inputs."""
    p = job.params
    key = p.model_dump_json(exclude=NOT_PIXELS) + json.dumps(job.inputs, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"{Path(p.image).stem}-seed{p.seed}-str{p.strength:g}-lora{p.lora_scale:g}-{digest}.png"


def input_hashes(p: InpaintingParams) -> dict[str, str | None]:
    """sha256 of every input file of concrete params (picture, LoRA, mask file): what a reproduction must match."""
    files = {"image": p.image, "lora": None if p.lora == "none" else p.lora, "mask_file": p.mask_file or None}
    return {name: sha256(path) if path else None for name, path in files.items()}


def saved_result(folder: Path, job: Job) -> Result | None:
    """The result of exactly this job if an earlier run saved it (PNG and sidecar), else None."""
    dest = folder / output_name(job)
    sidecar = Path(f"{dest}.params.json")
    if not (dest.is_file() and sidecar.is_file()):
        return None
    data = read_json(sidecar)
    return Result(load_image(dest), dest, Crop(tuple(data["crop_box"]), tuple(data["work_size"])), cached=True)


def run_and_save(pipe, job: Job, folder: Path, **extra) -> Result:
    """Inpaint, then write the PNG atomically and its sidecar: concrete params, input hashes, crop, library versions
    and the CPU thread count (a CPU result's last bits depend on how the sums were split across threads)."""
    import diffusers
    import torch

    image, crop = inpaint_image(pipe, job)
    dest = folder / output_name(job)
    with atomic_path(dest) as tmp:
        image.save(tmp, format="PNG")
    write_sidecar(dest, job.params, input_sha256=job.inputs, crop_box=list(crop.box), work_size=list(crop.work_size),
                  versions={"diffusers": diffusers.__version__, "torch": torch.__version__},
                  torch_threads=torch.get_num_threads(), **extra)  # fmt: skip
    return Result(image, dest, crop)


def reproduce(sidecar: str | Path, pipe=None) -> Image.Image:
    """Re-run the inpainting a sidecar describes and return the picture, without saving.

    A `pipe` passed in must hold the sidecar's model and LoRA; input files that changed since are refused.
    """
    data = read_json(sidecar)
    job = prepare(InpaintingParams.validate_values(data["params"], where=str(sidecar)))
    changed = [name for name, digest in job.inputs.items() if digest != data["input_sha256"][name]]
    if changed:
        raise InputDataError(f"{sidecar}: input {', '.join(changed)} changed since the result was made",
                             fix="restore the original file(s); the sidecar's params name them")
    with torch_threads(data.get("torch_threads")):
        return inpaint_image(pipe or load_pipeline(job.params), job)[0]


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with torch on `n` CPU threads (the count a result was made with), then restore; None changes nothing."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
