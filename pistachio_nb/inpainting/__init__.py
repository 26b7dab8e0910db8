"""05_inpainting: masks from params, SDXL inpainting with the character LoRA (diffusers or ComfyUI), paste-back.

Public verb: `inpaint(params) -> Inpainting` (the main picture + sidecar under `<workspace>/inpainting/`);
its methods make and show the rest: `model_view()`, `before_after()`, `sweep()`, `comfy()`,
`reproduce_difference()`. `prepare(params)` checks the inputs and builds the masks before any model loads.
"""

from ..lazy import lazy_exports

_EXPORTS = {  # public name -> the module that defines it
    "InpaintingParams": ".params",
    "MaskRegion": ".params",
    "Inpainting": ".run",
    "inpaint": ".run",
    "prepare": ".stage",
    "reproduce": ".stage",
}
__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
