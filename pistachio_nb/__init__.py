"""Pistachio notebooks: the helper package behind every notebook (train an SDXL character LoRA, generate via ComfyUI)."""

__version__ = "0.1.0"
