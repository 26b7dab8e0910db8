"""Batch generation: prompts file -> jobs -> ComfyUI servers or a local pipeline -> images + manifest."""

from .run import BatchResult, run_batch

__all__ = ["BatchResult", "run_batch"]
