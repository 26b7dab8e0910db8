"""SDXL inpainting with diffusers: the inpaint pipeline built from the loaded model, the LoRA at a scale, one run.

`StableDiffusionXLInpaintPipeline.from_pipe` reuses the already loaded UNet, VAE and text encoders
(no second copy in VRAM). With a base checkpoint (4-channel UNet) the pipeline keeps unmasked
latents from the original at every step; a dedicated inpainting checkpoint (9-channel UNet, e.g.
diffusers/stable-diffusion-xl-1.0-inpainting-0.1) also sees the masked image and blends seams better.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from ..errors import ModelLoadError
from ..models import load_sdxl_pipeline

ADAPTER = "character"


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

    pipe = StableDiffusionXLInpaintPipeline.from_pipe(load_sdxl_pipeline(model, device))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def native_resolution(pipe) -> int:
    """The side the model was trained at (1024 for SDXL): UNet sample size times the VAE's downsampling."""
    return int(pipe.unet.config.sample_size * pipe.vae_scale_factor)


def size_multiple(pipe) -> int:
    """Side multiple the UNet divides cleanly: VAE factor x 2 per UNet downsampling (32 for SDXL)."""
    return int(pipe.vae_scale_factor * 2 ** (len(pipe.unet.config.block_out_channels) - 1))


def load_lora(pipe, lora_file: str | Path) -> None:
    """Load the character LoRA (kohya or diffusers keys) into the pipeline as adapter `character`."""
    path = Path(lora_file)
    if not path.is_file():
        raise ModelLoadError(f"LoRA file {path} does not exist",
                             fix="set lora to a .safetensors file, 'recommended' or 'none'")
    try:
        pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=ADAPTER)
    except Exception as err:  # noqa: BLE001 - a wrong file becomes one clear error
        raise ModelLoadError(
            f"could not load LoRA {path}: {type(err).__name__}: {err}",
            fix="use a LoRA trained for this SDXL base model (03_training writes them under <workspace>/lora/)",
        ) from err


def set_lora_scale(pipe, scale: float) -> None:
    """Weight of the loaded LoRA (0 = the base model alone); a no-op without a LoRA."""
    if ADAPTER in pipe.get_list_adapters().get("unet", []):
        pipe.set_adapters([ADAPTER], adapter_weights=[scale])


@contextmanager
def diffusers_errors_only() -> Iterator[None]:
    """Silence diffusers' warnings for a call: the inpaint pipeline's VAE up/down-casting warns on every image."""
    from diffusers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)


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
