"""EMA of the trained adapter weights: a smoothed copy of the LoRA, exported beside the raw one.

Follows diffusers' `EMAModel` (training_utils.py, with its default `use_ema_warmup=False`): the shadow
starts as the initial weights and after every optimizer step t (1, 2, ...) becomes
`shadow + (1 - d_t) * (param - shadow)` with `d_t = min(decay, (1 + t) / (10 + t))`, so the
meaningless initial weights fade out fast and `decay` caps the averaging window at ~1 / (1 - decay) steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch


def step_decay(decay: float, step: int) -> float:
    """The decay used at optimizer step `step` (1-based): diffusers' warmup `(1 + t) / (10 + t)`, capped at `decay`."""
    return min(decay, (1 + step) / (10 + step))


@dataclass
class AdapterEma:
    """Float32 shadow copies of the trainable parameters `params` (same order), and the updates done."""

    decay: float
    params: list[torch.nn.Parameter]
    shadow: list[torch.Tensor]
    steps: int = 0

    @classmethod
    def of(cls, params: list[torch.nn.Parameter], decay: float, device: str) -> AdapterEma:
        """Start from the current weights; `device` 'cpu' keeps the shadow off the GPU, 'device' beside each param."""
        where = lambda p: torch.device("cpu") if device == "cpu" else p.device  # noqa: E731
        return cls(decay, params, [p.detach().to(where(p), torch.float32, copy=True) for p in params])

    @torch.no_grad()
    def update(self) -> None:
        """One EMA step, after an optimizer step."""
        self.steps += 1
        weight = 1 - step_decay(self.decay, self.steps)
        for s, p in zip(self.shadow, self.params, strict=True):
            s.lerp_(p.detach().to(s.device, torch.float32), weight)

    @torch.no_grad()
    def restart(self) -> None:
        """Start over from the current weights (a resumed state saved without EMA)."""
        for s, p in zip(self.shadow, self.params, strict=True):
            s.copy_(p.detach())
        self.steps = 0

    def state_dict(self) -> dict:
        return {"steps": self.steps, "shadow": [s.cpu() for s in self.shadow]}

    def load_state_dict(self, saved: dict) -> None:
        """Restore a saved EMA (the shadow keeps its device)."""
        if len(saved["shadow"]) != len(self.shadow):
            raise ValueError(f"saved EMA has {len(saved['shadow'])} tensors, the adapters {len(self.shadow)}")
        for s, saved_s in zip(self.shadow, saved["shadow"], strict=True):
            s.copy_(saved_s)
        self.steps = saved["steps"]

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the EMA weights in the model (to export them), then put the raw weights back exactly."""
        raw = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, s in zip(self.params, self.shadow, strict=True):
                p.copy_(s)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, r in zip(self.params, raw, strict=True):
                    p.copy_(r)
