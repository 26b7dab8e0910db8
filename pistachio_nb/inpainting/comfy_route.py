"""The same inpainting through ComfyUI: upload crop + mask, fill `workflows/inpaint_lora.json`, run, download, paste back.

ComfyUI keeps a mask as the picture's alpha channel with transparent = repaint (its mask editor's
convention; `LoadImage` outputs MASK = 1 - alpha). `/upload/mask` copies an uploaded image's alpha
into an already uploaded picture, so we send our white-is-repaint mask inverted into alpha.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image, ImageOps

from ..comfy.client import ComfyClient, ImageRef
from ..comfy.errors import ComfyError
from ..comfy.bindings import bound_nodes, check_bindings, given
from ..comfy.workflow import bypass, check_workflow, fill, load_workflow, workflow_bindings
from ..files import atomic_path, write_sidecar
from .params import InpaintingParams
from .paste import Crop, crop_for_model, paste_back
from .stage import Job, output_name

WORKFLOW = "inpaint_lora"  # filled through inpaint_lora.bindings.yaml beside it


@dataclass(frozen=True)
class ComfyResult:
    """The pasted-back ComfyUI result, where it was saved, and a one-row summary table."""

    image: Image.Image | None
    path: Path | None
    summary: pd.DataFrame

    def as_dict(self) -> dict:
        """The summary's one row as field -> value (plain Python values), for `display.facts`."""
        return self.summary.to_dict("records")[0]


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def alpha_mask(mask: Image.Image) -> Image.Image:
    """Our mask (white = repaint) as ComfyUI wants it: an RGBA image whose alpha is 0 where to repaint."""
    rgba = Image.new("RGBA", mask.size, (0, 0, 0, 255))
    rgba.putalpha(ImageOps.invert(mask.convert("L")))
    return rgba


def upload_masked(client: ComfyClient, picture: ImageRef, mask: Image.Image, name: str) -> ImageRef:
    """`/upload/mask` our mask into the uploaded `picture`'s alpha, then confirm the server wrote the file.

    A real ComfyUI answers 200 and writes nothing when the original is missing; `/view` tells.
    """
    masked = client.upload_mask(png_bytes(alpha_mask(mask)), name, picture)
    try:
        client.view(masked)
    except ComfyError as err:
        raise ComfyError(f"{client.url}/upload/mask answered {masked.subfolder}/{masked.filename} but the server has "
                         f"no such file (original {picture.subfolder}/{picture.filename} missing?)",
                         fix="check the ComfyUI input folder is writable and the picture upload succeeded") from err
    return masked


def graph_values(p: InpaintingParams, image_name: str, prefix: str) -> dict[str, Any]:
    """The workflow fields the params set (None = keep the workflow's own)."""
    return dict(prompt=p.prompt, negative=p.negative_prompt, image=image_name, seed=p.seed, steps=p.steps,
                cfg=p.guidance_scale, denoise=p.strength, checkpoint=p.comfy_checkpoint, lora=p.comfy_lora or None,
                lora_strength=p.lora_scale, filename_prefix=prefix)


def build_graph(p: InpaintingParams, image_name: str, prefix: str,
                object_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The inpaint workflow filled from the params (the character LoRA's node left out when `comfy_lora` is empty).

    With the server's `/object_info`, the bindings are checked against its nodes first (every problem at once).
    """
    graph, bindings, values = load_workflow(WORKFLOW), workflow_bindings(WORKFLOW), graph_values(p, image_name, prefix)
    if object_info is not None:
        check_bindings(bindings, graph, given(values), object_info, where=f"workflow {WORKFLOW}")
    filled = fill(graph, bindings, **values)
    for node_id in [] if p.comfy_lora else bound_nodes(bindings, graph, "lora"):
        filled = bypass(filled, node_id)
    return filled


def comfy_name(job: Job, crop: Crop) -> str:
    """Like the diffusers result's name (knobs + hash of pixel params and inputs), plus the server's model files."""
    p = job.params
    key = f"{output_name(job)}|{p.comfy_checkpoint}|{p.comfy_lora}|{crop.box}|{crop.work_size}"
    return f"{Path(output_name(job)).stem.rsplit('-', 1)[0]}-comfy-{hashlib.sha256(key.encode()).hexdigest()[:8]}.png"


def comfy_inpaint(p: InpaintingParams, job: Job, crop: Crop) -> ComfyResult:
    """Inpaint the job's crop on the ComfyUI server at `p.comfy_url`; save the pasted-back PNG + sidecar."""
    if not p.comfy_url:
        return ComfyResult(None, None, pd.DataFrame([{"comfy_url": "", "status": "skipped (comfy_url is empty)"}]))
    crop_image = crop_for_model(job.image, crop)
    crop_mask = crop_for_model(job.masks.hard, crop, Image.NEAREST)
    key = hashlib.sha256(png_bytes(crop_image) + png_bytes(crop_mask)).hexdigest()[:12]
    with ComfyClient(p.comfy_url) as client:
        picture = client.upload_image(png_bytes(crop_image), f"pistachio_inpaint_{key}.png", subfolder="pistachio")
        masked = upload_masked(client, picture, crop_mask, f"pistachio_inpaint_{key}_masked.png")
        name = f"{masked.subfolder}/{masked.filename}" if masked.subfolder else masked.filename
        info = client.object_info()
        graph = build_graph(job.params, name, f"pistachio/inpaint_{key}", info)
        check_workflow(graph, info, where=f"workflow {WORKFLOW}")
        run = client.run(graph, timeout=p.comfy_timeout)
        with Image.open(io.BytesIO(client.view(run.images[0]))) as out:
            generated = out.convert("RGB")
    image = paste_back(job.image, generated, job.masks.soft, crop)
    dest = p.ws.inpainting / "comfy" / comfy_name(job, crop)
    with atomic_path(dest) as tmp:
        image.save(tmp, format="PNG")
    write_sidecar(dest, job.params, comfy={"url": p.comfy_url, "prompt_id": run.prompt_id, "workflow": graph,
                                           "server_image": run.images[0].params()}, crop_box=list(crop.box))  # fmt: skip
    summary = pd.DataFrame([{"prompt_id": run.prompt_id, "seconds": round(run.seconds, 2), "uploaded": name,
                             "server_output": run.images[0].filename,
                             "saved": dest.relative_to(p.ws.root).as_posix()}])  # fmt: skip
    return ComfyResult(image, dest, summary)
