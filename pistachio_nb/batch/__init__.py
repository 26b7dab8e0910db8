"""Batch generation: prompts file -> jobs -> ComfyUI servers or a local pipeline -> images + manifest."""

_EXPORTS = {  # public name -> the module that defines it
    "BatchParams": ".params",
    "BatchResult": ".run",
    "plan_batch": ".run",
    "run_batch": ".run",
    "server_table": ".run",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    """Import a verb's module on first use, so importing the params (the profile loader does) stays light."""
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
