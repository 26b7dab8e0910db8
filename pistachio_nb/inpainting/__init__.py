"""05_inpainting: masks from params, SDXL inpainting with the character LoRA (diffusers or ComfyUI), paste-back."""

from .stage import inpaint, prepare, reproduce

__all__ = ["inpaint", "prepare", "reproduce"]
