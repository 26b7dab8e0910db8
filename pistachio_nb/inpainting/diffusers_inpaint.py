"""SDXL inpainting with diffusers: the inpaint pipeline built from the loaded model, the LoRA at a scale, one run.

`StableDiffusionXLInpaintPipeline` is built on the already loaded UNet, VAE and text encoders
(no second copy in VRAM, dtype kept). With a base checkpoint (4-channel UNet) the pipeline keeps unmasked
latents from the original at every step; a dedicated inpainting checkpoint (9-channel UNet, e.g.
diffusers/stable-diffusion-xl-1.0-inpainting-0.1) also sees the masked image and blends seams better.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from ..lora import diffusers_errors_only, set_lora_scale
from ..models import load_sdxl_pipeline


@dataclass(frozen=True)
class Sampling:
    """Everything besides the pictures that decides the output pixels."""

    prompt: str
    negative_prompt: str
    strength: float
    steps: int
    guidance_scale: float
    seed: int
    lora_scale: float


def load_inpaint_pipeline(model: str, device: str | None = None):
    """An SDXL inpaint pipeline from a base or inpainting checkpoint (hub id, folder or `tiny:sdxl`)."""
    from diffusers import StableDiffusionXLInpaintPipeline

    base = load_sdxl_pipeline(model, device)
    # the same modules in their loaded dtype: from_pipe() would cast every one to float32 (its default) with to()
    pipe = StableDiffusionXLInpaintPipeline(**base.components,
                                            force_zeros_for_empty_prompt=base.config.force_zeros_for_empty_prompt)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def native_resolution(pipe) -> int:
    """The side the model was trained at (1024 for SDXL): UNet sample size times the VAE's downsampling."""
    return int(pipe.unet.config.sample_size * pipe.vae_scale_factor)


def size_multiple(pipe) -> int:
    """Side multiple the UNet divides cleanly: VAE factor x 2 per UNet downsampling (32 for SDXL)."""
    return int(pipe.vae_scale_factor * 2 ** (len(pipe.unet.config.block_out_channels) - 1))


def run_pipeline(pipe, image: Image.Image, mask: Image.Image, s: Sampling) -> Image.Image:
    """One inpaint of `image` (already at working size) where `mask` is white; deterministic for a seed."""
    set_lora_scale(pipe, s.lora_scale)
    generator = torch.Generator("cpu").manual_seed(s.seed)  # CPU generator: same noise on any device
    with diffusers_errors_only():
        return pipe(
            prompt=s.prompt, negative_prompt=s.negative_prompt or None, image=image, mask_image=mask,
            width=image.width, height=image.height, strength=s.strength, num_inference_steps=s.steps,
            guidance_scale=s.guidance_scale, generator=generator,
        ).images[0]  # fmt: skip
