"""05_inpainting params: the picture, its mask regions, the model/LoRA, the sweep and the ComfyUI route.

Defaults live only in the notebook's `parameters` cell; each description equals that line's comment.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..params import NotebookParams


class MaskRegion(BaseModel):
    """One painted shape of an inpainting mask: a rectangle or ellipse inside `box` (x0, y0, x1, y1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shape: Literal["rectangle", "ellipse"] = Field(description="rectangle, or the ellipse inscribed in the box")
    box: tuple[float, float, float, float] = Field(description="left, top, right, bottom")
    units: Literal["relative", "pixels"] = Field(description="relative = fractions 0..1 of width/height; pixels = absolute")

    @model_validator(mode="after")
    def _box_ordered(self) -> Self:
        x0, y0, x1, y1 = self.box
        if not (x0 < x1 and y0 < y1):
            raise ValueError(f"box {self.box} needs left < right and top < bottom")
        if self.units == "relative" and not all(0 <= v <= 1 for v in self.box):
            raise ValueError(f"relative box {self.box} must lie within 0..1 (or use units: pixels)")
        return self


class InpaintingParams(NotebookParams):
    notebook: ClassVar[str] = "05_inpainting"

    image: str = Field(min_length=1, description="picture to fix: a file path, or \"dataset\" for the first image of <workspace>/dataset")
    prompt: str = Field(description="what the masked area should show (use the trigger word)")
    negative_prompt: str = Field(description="what to steer away from")
    mask_regions: list[MaskRegion] = Field(description="shapes to repaint (white); may be empty when mask_file is set")
    mask_file: str = Field(description="optional mask image (white: repaint), combined with mask_regions; \"\" for none")
    resize_mask: bool = Field(description="stretch a mask_file of another size to the picture (otherwise it is refused)")
    mask_grow: int = Field(ge=-256, le=256, description="pixels to grow (+) or shrink (-) the mask before feathering")
    mask_feather: int = Field(ge=0, le=256, description="blur radius (px) of the mask edge used when pasting back")
    model: str = Field(min_length=1, description="SDXL base (reused via from_pipe) or a dedicated SDXL inpainting checkpoint")
    lora: str = Field(min_length=1, description="LoRA .safetensors file, \"recommended\" (04_checkpoints' pick) or \"none\"")
    lora_scale: float = Field(ge=0, le=2, description="LoRA strength of the main result")
    strength: float = Field(gt=0, le=1, description="denoise: 1.0 repaints from noise, 0.3 keeps the area's layout and colours")
    steps: int = Field(ge=1, le=200, description="sampler steps at strength 1 (int(steps * strength) actually run)")
    guidance_scale: float = Field(ge=0, le=30, description="classifier-free guidance: how hard the prompt pulls")
    seed: int = Field(ge=0, le=2**64 - 1, description="noise seed: the same seed and params give the same picture")
    only_masked: bool = Field(description="inpaint a padded crop around the mask at the model's native resolution")
    crop_padding: int = Field(ge=0, le=4096, description="pixels of context around the mask in only_masked mode")
    sweep_strengths: list[float] = Field(min_length=1, max_length=8, description="strength values of the sweep grid (rows)")
    sweep_lora_scales: list[float] = Field(min_length=1, max_length=8, description="LoRA scales of the sweep grid (columns)")
    comfy_url: str = Field(description="ComfyUI server URL; \"\" skips the ComfyUI route")
    comfy_checkpoint: str = Field(description="checkpoint file name as ComfyUI lists it")
    comfy_lora: str = Field(description="LoRA file name as ComfyUI lists it: 04_checkpoints publishes the pick as <trigger>.safetensors; \"\" for no LoRA")
    comfy_timeout: float = Field(gt=0, le=3600, description="seconds to wait for the ComfyUI result")

    @model_validator(mode="after")
    def _inpaint_rules(self) -> Self:
        if not self.mask_regions and not self.mask_file:
            raise ValueError("no mask: give mask_regions, a mask_file, or both")
        bad = [v for v in self.sweep_strengths if not 0 < v <= 1] + [v for v in self.sweep_lora_scales if not 0 <= v <= 2]
        if bad:
            raise ValueError(f"sweep values out of range: {bad} (strengths in (0, 1], LoRA scales in [0, 2])")
        weakest = min(self.strength, *self.sweep_strengths)
        if self.steps * weakest < 1:  # diffusers runs int(steps * strength) steps; zero is an error there
            raise ValueError(f"steps {self.steps} x strength {weakest:g} runs no denoising step: raise steps or strength")
        return self
