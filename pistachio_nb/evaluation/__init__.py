"""04_checkpoints: compare LoRA checkpoints by identity, prompt fidelity, memorization and diversity; recommend one."""

from .compare import compare_checkpoints
from .recommend import read_recommendation

__all__ = ["compare_checkpoints", "read_recommendation"]
