"""Batch generation: prompts file -> jobs -> ComfyUI servers or a local pipeline -> images + manifest."""

from .run import BatchResult, plan_batch, run_batch, server_table

__all__ = ["BatchResult", "plan_batch", "run_batch", "server_table"]
