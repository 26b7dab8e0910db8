"""SDXL specifics for training: load the pipeline once, add LoRA adapters, encode images and captions.

Follows what the SDXL pipeline itself does at inference (penultimate hidden states of both CLIP
encoders concatenated, the second encoder's pooled projection), so training and sampling agree.
"""

from __future__ import annotations

import torch
from diffusers import DDPMScheduler
from peft import LoHaConfig, LoKrConfig, LoraConfig, PeftConfig

from ..models import load_sdxl_pipeline

TEXT_ENCODER_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def load_for_training(base_model: str, device: str, weight_dtype: torch.dtype):
    """The base pipeline with every weight frozen (VAE in fp32, it overflows in fp16) and a DDPM noise schedule."""
    pipe = load_sdxl_pipeline(base_model, device=device, dtype={"default": weight_dtype, "vae": torch.float32})
    for module in (pipe.unet, pipe.vae, pipe.text_encoder, pipe.text_encoder_2):
        module.requires_grad_(False)
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    return pipe, noise_scheduler


def adapter_config(network_type: str, rank: int, alpha: float, targets: list[str]) -> PeftConfig:
    """PEFT's config for a network type; each starts as an exact no-op (LoRA: Gaussian down, zero up).

    lora and locon are the same LoRA (kohya calls LoRA on convolutions too "LoCon"; which layers it
    adapts is checked against the type in training.vram); dora is LoRA with weight decomposition
    (Liu et al. 2024), loha the Hadamard product of two low-rank pairs (Hyeon-Woo et al. 2022, FedPara)
    and lokr a Kronecker product (LyCORIS, Yeh et al. 2024), as PEFT implements them."""
    targets = list(targets)
    if network_type == "loha":
        return LoHaConfig(r=rank, alpha=alpha, target_modules=targets)
    if network_type == "lokr":
        return LoKrConfig(r=rank, alpha=alpha, target_modules=targets)
    return LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights="gaussian", target_modules=targets,
                      use_dora=network_type == "dora")  # fmt: skip


def add_adapters(pipe, rank: int, alpha: float, unet_targets: list[str], text_encoders: bool,
                 network_type: str) -> list[torch.nn.Module]:  # fmt: skip
    """Add adapters of `network_type` (fp32 trainable weights) and return the modules that now train."""
    pipe.unet.add_adapter(adapter_config(network_type, rank, alpha, unet_targets))
    trained = [pipe.unet]
    if text_encoders:
        for encoder in (pipe.text_encoder, pipe.text_encoder_2):
            encoder.add_adapter(adapter_config(network_type, rank, alpha, TEXT_ENCODER_TARGETS))
            trained.append(encoder)
    for module in trained:
        for param in module.parameters():
            if param.requires_grad:
                param.data = param.data.float()
    return trained


def trainable_parameters(modules: list[torch.nn.Module]) -> list[torch.nn.Parameter]:
    return [p for m in modules for p in m.parameters() if p.requires_grad]


def encode_captions(pipe, captions: list[str], encoders: tuple | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(prompt_embeds (B, 77, d1+d2), pooled (B, d2)) exactly as the SDXL pipeline builds them.

    `encoders` replaces the pipeline's two text encoders (e.g. their DDP wrappers when they train)."""
    hidden, pooled = [], None
    tokenizers = (pipe.tokenizer, pipe.tokenizer_2)
    device = pipe.text_encoder.device  # not `pipe.device`: diffusers walks every module of every component for it
    for tokenizer, encoder in zip(tokenizers, encoders or (pipe.text_encoder, pipe.text_encoder_2)):
        ids = tokenizer(
            captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids.to(device)
        out = encoder(ids, output_hidden_states=True)
        hidden.append(out.hidden_states[-2])
        pooled = out[0]  # the projected pooled output of the second encoder is the one SDXL uses
    return torch.cat(hidden, dim=-1), pooled


@torch.no_grad()
def encode_latents(vae, pixels: torch.Tensor) -> torch.Tensor:
    """VAE latents of (B, 3, H, W) pixels in [-1, 1]: the distribution mean, scaled (deterministic).

    Device and dtype come from one parameter: diffusers' `vae.device` / `.dtype` walk every module (~5 ms each)."""
    first = next(vae.parameters())
    return vae.encode(pixels.to(first.device, first.dtype)).latent_dist.mean * vae.config.scaling_factor
