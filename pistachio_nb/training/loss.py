"""The diffusion training objective: noise (with offset), timesteps in a range, epsilon/v targets, the
per-element loss (L2, pseudo-Huber or smooth-L1 with a threshold schedule) and per-sample weights
(min-SNR or debiased estimation).

References: min-SNR weighting (Hang et al. 2023, arXiv:2303.09556, as in diffusers' `compute_snr`),
debiased estimation (Yu et al. 2024, arXiv:2310.08442, as kohya-ss/sd-scripts `apply_debiased_estimation`),
scheduled pseudo-Huber loss (Khrapov & Popov 2024, arXiv:2403.16728, as kohya's `conditional_loss`
and `get_huber_threshold`), offset noise (Guttenberg 2023), v-prediction (Salimans & Ho 2022).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .features import Batch

VALIDATION_TIMESTEP_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)  # fixed, so validation loss compares across checkpoints
MAX_DEBIAS_SNR = 1000.0  # kohya clamps SNR here before 1/sqrt(SNR), so the lowest-noise steps stay finite


@dataclass(frozen=True)
class LossOptions:
    """The training objective's settings (validation always uses the plain MSE at fixed timesteps)."""

    noise_offset: float = 0.0
    min_snr_gamma: float = 0.0
    debiased_estimation: bool = False
    loss_type: str = "l2"  # l2 | huber | smooth_l1
    huber_schedule: str = "snr"  # constant | exponential | snr
    huber_c: float = 0.1
    min_timestep: int = 0
    max_timestep: int = 1000  # exclusive


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


def huber_threshold(noise_scheduler, timesteps: torch.Tensor, schedule: str, c: float) -> torch.Tensor:
    """The pseudo-Huber threshold per sample (kohya's `get_huber_threshold`, Khrapov & Popov 2024): constant c,
    exponential from 1 at t=0 down to c at the last timestep, or 'snr': (1 - c) / (1 + sigma)^2 + c."""
    if schedule == "constant":
        return torch.full(timesteps.shape, c, device=timesteps.device)
    if schedule == "exponential":
        rate = -math.log(c) / noise_scheduler.config.num_train_timesteps
        return torch.exp(-rate * timesteps.float())
    alphas_cumprod = noise_scheduler.alphas_cumprod.to(timesteps.device)[timesteps].float()
    sigmas = ((1.0 - alphas_cumprod) / alphas_cumprod) ** 0.5
    return (1 - c) / (1 + sigmas) ** 2 + c


def elementwise_loss(pred: torch.Tensor, target: torch.Tensor, loss_type: str, c: torch.Tensor | None) -> torch.Tensor:
    """L2, or kohya's pseudo-Huber 2c(sqrt(d^2 + c^2) - c) / smooth-L1 2(sqrt(d^2 + c^2) - c) with per-sample c."""
    if loss_type == "l2":
        return F.mse_loss(pred, target, reduction="none")
    c = c.view(-1, *[1] * (pred.ndim - 1))
    root = torch.sqrt((pred - target) ** 2 + c**2) - c
    return 2 * c * root if loss_type == "huber" else 2 * root


def debiased_weights(noise_scheduler, timesteps: torch.Tensor) -> torch.Tensor:
    """Debiased estimation (Yu et al. 2024, kohya's `apply_debiased_estimation`): 1/sqrt(SNR), 1/(SNR+1) for v."""
    s = torch.clamp(snr(noise_scheduler, timesteps), max=MAX_DEBIAS_SNR)
    return 1 / (s + 1) if noise_scheduler.config.prediction_type == "v_prediction" else 1 / torch.sqrt(s)


def per_sample_loss(unet, noise_scheduler, batch: Batch, noise: torch.Tensor, timesteps: torch.Tensor,
                    loss_type: str = "l2", threshold: torch.Tensor | None = None,
                    weights: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """The chosen loss between prediction and target, one value per sample; with `weights` (B, 1, h, w) their
    weighted mean, so an image's loss keeps its scale whatever share of it the mask covers (OneTrainer's
    `normalize_masked_area_loss`; sd-scripts' plain product shrinks small-face images' loss)."""
    noisy = noise_scheduler.add_noise(batch.latents, noise, timesteps)
    pred = predict(unet, batch, noisy, timesteps).float()
    target = target_for(noise_scheduler, batch.latents, noise, timesteps).float()
    loss, dims = elementwise_loss(pred, target, loss_type, threshold), tuple(range(1, pred.ndim))
    if weights is None:
        return loss.mean(dim=dims)
    return (loss * weights).mean(dim=dims) / weights.mean(dim=dims)


def training_loss(unet, noise_scheduler, batch: Batch, generator: torch.Generator, opts: LossOptions) -> torch.Tensor:
    """Loss of one micro-batch at random timesteps in [min_timestep, max_timestep), weighted as `opts` say."""
    noise = make_noise(batch.latents, generator, opts.noise_offset)
    end = min(opts.max_timestep, noise_scheduler.config.num_train_timesteps)
    timesteps = torch.randint(opts.min_timestep, end, (batch.latents.shape[0],), generator=generator).to(batch.latents.device)
    threshold = None if opts.loss_type == "l2" else huber_threshold(noise_scheduler, timesteps, opts.huber_schedule, opts.huber_c)
    losses = per_sample_loss(unet, noise_scheduler, batch, noise, timesteps, opts.loss_type, threshold, batch.weights)
    if opts.min_snr_gamma > 0:
        losses = losses * min_snr_weights(noise_scheduler, timesteps, opts.min_snr_gamma)
    if opts.debiased_estimation:
        losses = losses * debiased_weights(noise_scheduler, timesteps)
    return losses.mean()


@torch.no_grad()
def validation_loss(unet, noise_scheduler, batch: Batch, seed: int, weights: torch.Tensor | None = None) -> float:
    """Loss at fixed timesteps with fixed noise: the same question asked at every checkpoint; unweighted
    unless `weights` (B, 1, h, w) are given (e.g. a mask, to ask how one region is learned)."""
    steps = noise_scheduler.config.num_train_timesteps
    generator = torch.Generator().manual_seed(seed)
    total = []
    for fraction in VALIDATION_TIMESTEP_FRACTIONS:
        noise = make_noise(batch.latents, generator, 0.0)
        timesteps = torch.full((batch.latents.shape[0],), int(fraction * (steps - 1)), device=batch.latents.device)
        total.append(per_sample_loss(unet, noise_scheduler, batch, noise, timesteps, weights=weights))
    return torch.cat(total).mean().item()
