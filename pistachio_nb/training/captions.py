"""Caption augmentation during training: caption dropout, tag shuffle with `keep_tokens`, tag dropout.

Follows kohya-ss/sd-scripts `library/train_util.py` (`BaseDataset.process_caption`): a whole caption is
dropped first (`caption_dropout_rate`, the model then also learns the unconditional case), else the
tags after the first `keep_tokens` (the trigger) are shuffled (`shuffle_caption`) and each is dropped
with `caption_tag_dropout_rate`. Every draw comes from the run's saved random stream, so a seed and a
resume reproduce the same captions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class CaptionPolicy:
    """How training captions vary from step to step (validation always uses them as written)."""

    shuffle: bool = False
    keep_tokens: int = 1  # leading comma-separated tags that never move or drop (the trigger first)
    tag_dropout: float = 0.0
    caption_dropout: float = 0.0

    @property
    def active(self) -> bool:
        return self.shuffle or self.tag_dropout > 0 or self.caption_dropout > 0

    def apply(self, caption: str, rng: random.Random) -> str:
        """One training-time version of `caption`."""
        if self.caption_dropout and rng.random() < self.caption_dropout:
            return ""
        tags = [t.strip() for t in caption.split(",")]
        fixed, rest = tags[: self.keep_tokens], tags[self.keep_tokens :]
        if self.shuffle:
            rng.shuffle(rest)
        if self.tag_dropout:
            rest = [t for t in rest if rng.random() >= self.tag_dropout]
        return ", ".join(fixed + rest)
