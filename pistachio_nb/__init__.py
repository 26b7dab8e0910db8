"""Pistachio notebooks: the helper package behind every notebook (train an SDXL character LoRA, generate via ComfyUI)."""

__version__ = "0.1.0"


def _quiet_torchvision_fallback() -> None:
    """Drop transformers' "`CLIPImageProcessor` requires torchvision ... falling back to ...Pil" notice.

    diffusers imports CLIPImageProcessor at module import (its SDXL pipeline and IP-Adapter loader); the pins
    have no torchvision on purpose, and the PIL fallback is the processor we use, so the notice is noise.
    """
    import logging

    logging.getLogger("transformers.utils.import_utils").addFilter(
        lambda record: "requires torchvision" not in record.getMessage())


_quiet_torchvision_fallback()
