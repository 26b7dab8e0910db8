"""05_inpainting: masks from params, SDXL inpainting with the character LoRA (diffusers or ComfyUI), paste-back.

Public verb: `inpaint(params) -> Inpainting` (the main picture + sidecar under `<workspace>/inpainting/`);
its methods make and show the rest: `model_view()`, `before_after()`, `sweep()`, `comfy()`,
`reproduce_difference()`. `prepare(params)` checks the inputs and builds the masks before any model loads.
"""

_EXPORTS = {  # public name -> the module that defines it
    "InpaintingParams": ".params",
    "MaskRegion": ".params",
    "Inpainting": ".run",
    "inpaint": ".run",
    "prepare": ".stage",
    "reproduce": ".stage",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    """Import a verb's module on first use, so importing the params (the profile loader does) stays light."""
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
