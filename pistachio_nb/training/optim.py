"""The optimizers a character LoRA is trained with, each built from its library with the settings its guide gives.

- adamw: `torch.optim.AdamW`, its fused kernel where torch has one. adamw8bit: bitsandbytes' `AdamW8bit` (8-bit moments, ~1/4 of AdamW's
  state; its CPU backend runs it too in bitsandbytes 0.50, paged variants are CUDA-only).
- prodigy: `prodigyopt.Prodigy` (Mishchenko & Defazio 2023) estimates the step size itself, so lr is a
  multiplier near 1; with kohya-ss/sd-scripts' recommended args (decouple, weight_decay 0.01,
  use_bias_correction, safeguard_warmup, betas 0.9/0.99) and `d_coef` exposed.
- schedulefree_adamw: `schedulefree.AdamWScheduleFree` (Defazio et al. 2024) replaces the LR schedule
  (its own warmup only) and must be switched to eval weights to validate, sample and export.
- adafactor: transformers' `Adafactor` with a fixed lr (scale_parameter, relative_step and warmup_init
  off, as kohya's SDXL guide sets it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .params import TrainingParams


def make_optimizer(p: TrainingParams, groups: list[dict]) -> torch.optim.Optimizer:
    """The optimizer `p.optimizer` over param groups that each carry their "lr"; left in train mode."""
    if p.optimizer == "adamw8bit":
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(groups)
    if p.optimizer == "prodigy":
        from prodigyopt import Prodigy

        return Prodigy(groups, betas=(0.9, 0.99), weight_decay=0.01, decouple=True, use_bias_correction=True,
                       safeguard_warmup=p.prodigy_safeguard_warmup, d_coef=p.prodigy_d_coef)  # fmt: skip
    if p.optimizer == "schedulefree_adamw":
        from schedulefree import AdamWScheduleFree

        optimizer = AdamWScheduleFree(groups, warmup_steps=p.lr_warmup_steps)
        optimizer.train()
        return optimizer
    if p.optimizer == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(groups, scale_parameter=False, relative_step=False, warmup_init=False)
    try:  # one kernel over all tensors: a LoRA's hundreds of small ones step ~9x cheaper than one at a time
        return torch.optim.AdamW(groups, fused=True)
    except (RuntimeError, ValueError):  # a device or dtype torch has no fused kernel for
        return torch.optim.AdamW(groups)


@contextmanager
def eval_weights(optimizer) -> Iterator[None]:
    """Hold a schedule-free optimizer's averaged (eval) weights in the model for validation, samples, exports."""
    switch = callable(getattr(optimizer, "eval", None)) and callable(getattr(optimizer, "train", None))
    if switch:
        optimizer.eval()
    try:
        yield
    finally:
        if switch:
            optimizer.train()
