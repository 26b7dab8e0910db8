"""The diffusion training objective: noise (with offset), timesteps, epsilon/v targets, min-SNR weights.

References: min-SNR weighting (Hang et al. 2023, as in diffusers' `compute_snr`), offset noise
(Guttenberg 2023), v-prediction (Salimans & Ho 2022).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .features import Batch

VALIDATION_TIMESTEP_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)  # fixed, so validation loss compares across checkpoints


def snr(noise_scheduler, timesteps: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio alpha_bar / (1 - alpha_bar) at each timestep."""
    alphas_cumprod = noise_scheduler.alphas_cumprod.to(timesteps.device)[timesteps].float()
    return alphas_cumprod / (1.0 - alphas_cumprod)


def min_snr_weights(noise_scheduler, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-sample loss weights min(SNR, gamma)/SNR (epsilon) or min(SNR, gamma)/(SNR+1) (v-prediction)."""
    s = snr(noise_scheduler, timesteps)
    clipped = torch.clamp(s, max=gamma)
    return clipped / (s + 1.0) if noise_scheduler.config.prediction_type == "v_prediction" else clipped / s


def make_noise(latents: torch.Tensor, generator: torch.Generator, noise_offset: float) -> torch.Tensor:
    """Gaussian noise, plus a per-channel constant shift when noise_offset > 0 (learns overall brightness)."""
    noise = torch.randn(latents.shape, generator=generator).to(latents.device)
    if noise_offset:
        noise += noise_offset * torch.randn((*latents.shape[:2], 1, 1), generator=generator).to(latents.device)
    return noise


def target_for(noise_scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """What the UNet should predict, per the scheduler's prediction type."""
    kind = noise_scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return noise_scheduler.get_velocity(latents, noise, timesteps)
    raise ValueError(f"unsupported prediction_type {kind!r} in the base model's scheduler config")


def predict(unet, batch: Batch, noisy: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """UNet output; the noisy latents take the conditioning's dtype (the frozen weights' dtype)."""
    cond = {"text_embeds": batch.pooled, "time_ids": batch.time_ids}
    return unet(noisy.to(batch.prompt_embeds.dtype), timesteps, batch.prompt_embeds, added_cond_kwargs=cond).sample


def per_sample_loss(unet, noise_scheduler, batch: Batch, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """MSE between prediction and target, one value per sample."""
    noisy = noise_scheduler.add_noise(batch.latents, noise, timesteps)
    pred = predict(unet, batch, noisy, timesteps).float()
    target = target_for(noise_scheduler, batch.latents, noise, timesteps).float()
    return F.mse_loss(pred, target, reduction="none").mean(dim=tuple(range(1, pred.ndim)))


def training_loss(unet, noise_scheduler, batch: Batch, generator: torch.Generator, noise_offset: float,
                  min_snr_gamma: float) -> torch.Tensor:  # fmt: skip
    """Loss of one micro-batch at random timesteps, min-SNR weighted when gamma > 0."""
    noise = make_noise(batch.latents, generator, noise_offset)
    steps = noise_scheduler.config.num_train_timesteps
    timesteps = torch.randint(0, steps, (batch.latents.shape[0],), generator=generator).to(batch.latents.device)
    losses = per_sample_loss(unet, noise_scheduler, batch, noise, timesteps)
    if min_snr_gamma > 0:
        losses = losses * min_snr_weights(noise_scheduler, timesteps, min_snr_gamma)
    return losses.mean()


@torch.no_grad()
def validation_loss(unet, noise_scheduler, batch: Batch, seed: int) -> float:
    """Unweighted loss at fixed timesteps with fixed noise: the same question asked at every checkpoint."""
    steps = noise_scheduler.config.num_train_timesteps
    generator = torch.Generator().manual_seed(seed)
    total = []
    for fraction in VALIDATION_TIMESTEP_FRACTIONS:
        noise = make_noise(batch.latents, generator, 0.0)
        timesteps = torch.full((batch.latents.shape[0],), int(fraction * (steps - 1)), device=batch.latents.device)
        total.append(per_sample_loss(unet, noise_scheduler, batch, noise, timesteps))
    return torch.cat(total).mean().item()
