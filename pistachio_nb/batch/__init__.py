"""Batch generation: prompts file -> jobs -> ComfyUI servers or a local pipeline -> images + manifest."""

from ..lazy import lazy_exports

_EXPORTS = {  # public name -> the module that defines it
    "BatchParams": ".params",
    "BatchResult": ".run",
    "plan_batch": ".run",
    "run_batch": ".run",
    "server_table": ".run",
}
__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
