"""Checks that need the machine or the previous run, done before any weights load.

Static contradictions (e.g. cached text embeddings with text-encoder training) are refused by
`TrainingParams` itself; here: precision and optimizer vs the device found, a resume whose
settings would silently change the run being continued, and a resolution above the dataset's buckets.
"""

from __future__ import annotations

import importlib.util

from ..errors import ParamsError
from .params import TrainingParams

# Settings that define the run being resumed; changing them mid-run would make the state meaningless.
RUN_DEFINING = (
    "base_model", "resolution", "network_type", "rank", "alpha", "target_modules", "train_text_encoder", "unet_lr",
    "text_encoder_lr", "lr_scheduler", "lr_warmup_steps", "batch_size", "gradient_accumulation", "optimizer",
    "prodigy_d_coef", "prodigy_safeguard_warmup", "keep_tokens", "tag_dropout", "caption_dropout",
    "min_snr_gamma", "debiased_estimation", "loss_type", "huber_schedule", "huber_c", "min_timestep", "max_timestep",
    "noise_offset", "seed", "caption_shuffle", "prior_preservation", "prior_loss_weight",
)  # fmt: skip


OPTIMIZER_PACKAGES = {"adamw8bit": "bitsandbytes", "prodigy": "prodigyopt", "schedulefree_adamw": "schedulefree"}


def check_device(p: TrainingParams, device: str) -> None:
    """Refuse precision/optimizer choices the device cannot run."""
    cuda = device.startswith("cuda")
    if p.mixed_precision == "fp16" and not cuda:
        raise ParamsError(
            f"mixed_precision 'fp16' on {device}: half-precision training needs a CUDA GPU",
            fix="set mixed_precision: 'no' (or 'bf16') on this machine",
        )
    package = OPTIMIZER_PACKAGES.get(p.optimizer)
    if package and importlib.util.find_spec(package) is None:
        raise ParamsError(f"optimizer {p.optimizer!r} needs the {package} package, which is not installed",
                          fix=f"add {package}==<version> to requirements-pinned.txt and run make setup, or use 'adamw'")  # fmt: skip


def check_resume(p: TrainingParams, saved: dict, state: str, dataset_fingerprint: str) -> None:
    """Refuse to resume a state saved with different run-defining settings or data, naming each difference."""
    now = {**p.model_dump(mode="json"), "dataset_fingerprint": dataset_fingerprint}
    keys = (*RUN_DEFINING, "dataset_fingerprint")  # images, captions, sizes and repeats
    diffs = [f"{k}: saved {saved.get(k)!r}, now {now[k]!r}" for k in keys if saved.get(k) != now[k]]
    if diffs:
        raise ParamsError(
            f"cannot resume {state}: settings differ from the run that saved it:\n  " + "\n  ".join(diffs),
            fix="restore those settings to continue that run, or set resume: '' to start a new one",
        )


def upscale_warning(p: TrainingParams, base_resolution: int) -> str | None:
    """A warning when `resolution` is above the dataset's bucket base: every image would be upscaled."""
    if p.resolution <= base_resolution:
        return None
    return (f"resolution {p.resolution} is above the dataset's bucket base {base_resolution}: every image is upscaled "
            f"{p.resolution / base_resolution:.2f}x (e.g. {base_resolution}x{base_resolution} -> {p.resolution}x{p.resolution}), "
            f"which adds blur, not detail; rebuild 01_dataset at base_resolution {p.resolution} or set resolution: {base_resolution}")  # fmt: skip
