"""Pistachio notebooks: the helper package behind every notebook (train an SDXL character LoRA, generate via ComfyUI)."""

__version__ = "0.1.0"


def _quiet_import_notices() -> None:
    """Drop two notices that tell the user to install packages the pins leave out on purpose.

    transformers' "`CLIPImageProcessor` requires torchvision ... falling back to ...Pil" (diffusers imports the
    processor at module import; the PIL fallback is the processor we use) and bitsandbytes' "Failed to load
    CPU gemm_4bit_forward from kernels-community" (peft imports bitsandbytes; on CPUs with AVX512-BF16 it
    tries the `kernels` hub package for 4-bit matmuls, which nothing here uses).
    """
    import logging

    logging.getLogger("transformers.utils.import_utils").addFilter(
        lambda record: "requires torchvision" not in record.getMessage())
    logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(
        lambda record: "gemm_4bit_forward" not in record.getMessage())


_quiet_import_notices()
