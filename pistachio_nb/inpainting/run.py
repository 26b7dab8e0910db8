"""`inpaint`: the 05_inpainting stage as one composition, and what the notebook looks at afterwards.

`inpaint(p)` checks the inputs (`prepare`), makes the main picture (or reuses the saved one) and returns
an `Inpainting`: the job, the result, and the pipeline (loaded on first need, then shared). The later
steps are its methods, so the notebook and a script make the same pictures with the same calls: the
model's view, before/after, the strength x LoRA-scale sweep, the same fix through ComfyUI, and the
reproduction from the sidecar.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from .comfy_route import ComfyResult, comfy_inpaint
from .diffusers_inpaint import native_resolution
from .params import InpaintingParams
from .paste import Crop
from .stage import Job, Result, load_pipeline, prepare, reproduce, run_and_save, saved_result
from .sweep import sweep
from .views import before_after, model_view, pixels_changed


@dataclass
class Inpainting:
    """One inpainting job, its main result (PNG + sidecar) and the pipeline it shares with the later steps."""

    job: Job
    pipe: Any = field(default=None, repr=False)
    result: Result | None = None

    def pipeline(self):
        """The inpaint pipeline with the job's model and LoRA, loaded once on first use."""
        if self.pipe is None:
            self.pipe = load_pipeline(self.job.params)
        return self.pipe

    # the main result
    @property
    def image(self) -> Image.Image:
        return self.result.image

    @property
    def path(self) -> Path:
        return self.result.path

    @property
    def crop(self) -> Crop:
        return self.result.crop

    @property
    def cached(self) -> bool:
        return self.result.cached

    @property
    def sidecar(self) -> Path:
        return Path(f"{self.result.path}.params.json")

    # looking at it
    def native_resolution(self) -> int:
        """The model's native side (1024 for SDXL): what an only_masked crop is scaled to."""
        return native_resolution(self.pipeline())

    def model_view(self):
        """Figure: the crop and mask exactly as the model received them."""
        return model_view(self.job.image, self.job.masks, self.crop)

    def before_after(self, comfy: ComfyResult | None = None):
        """Figure: original, mask, the result (and the ComfyUI one), each with its difference to the original."""
        results = [("diffusers", self.image)]
        if comfy is not None and comfy.image is not None:
            results.append(("ComfyUI", comfy.image))
        return before_after(self.job.image, self.job.masks, *results)

    def pixels_changed_outside_mask(self) -> int:
        """Pixels outside the feathered mask that differ from the original: 0 is the paste-back guarantee."""
        return pixels_changed(self.job.image, self.image, outside=self.job.masks.soft)

    # the later steps
    def sweep(self):
        """(figure, table) of every `sweep_strengths` x `sweep_lora_scales` cell at the job's seed (saved cells reused)."""
        p = self.job.params
        return sweep(self.pipeline(), self.job, p.sweep_strengths, p.sweep_lora_scales)

    def comfy(self) -> ComfyResult:
        """The same fix through ComfyUI at `comfy_url` (skipped when it is empty), on the same crop."""
        return comfy_inpaint(self.job.params, self.job, self.crop)

    def reproduce_difference(self) -> int:
        """Re-run the saved result from its sidecar; the number of pixels that differ from the saved PNG (0)."""
        again = reproduce(self.sidecar, self.pipeline())
        with Image.open(self.path) as saved:
            return pixels_changed(again, saved)


def inpaint(p: InpaintingParams, pipe=None, job: Job | None = None) -> Inpainting:
    """Inpaint `p.image` where the mask says, with the LoRA at `p.lora_scale`; save PNG + sidecar in the workspace.

    Reuses the saved result when params and inputs are unchanged (the pipeline is then not even loaded).
    """
    stage = Inpainting(job or prepare(p), pipe)
    stage.result = saved_result(p.ws.inpainting, stage.job) or run_and_save(stage.pipeline(), stage.job, p.ws.inpainting)
    return stage
