"""00_setup: is this pod able to do today's work? Pins, GPU, models, ComfyUI health, workflows.
"""

_EXPORTS = {  # public name -> the module that defines it
    "SetupParams": ".params",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    """Import a verb's module on first use, so importing the params (the profile loader does) stays light."""
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
