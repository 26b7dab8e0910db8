"""Using a trained LoRA in a diffusers pipeline: choose the file, load it as a named adapter, set its scale.

Shared by checkpoint comparison, inpainting and the local batch backend, so all three accept the
same choices ("none", "recommended" = 04_checkpoints' pick, or a file) and fail the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import InputDataError, ModelLoadError
from .paths import resolve

ADAPTER = "character"


def resolve_lora(choice: str, workspace: Path) -> Path | None:
    """The LoRA file for a `lora` param: "none" -> None, "recommended" -> 04's pick, else an existing path."""
    if choice == "none":
        return None
    if choice == "recommended":
        from .evaluation import read_recommendation

        return Path(read_recommendation(workspace)["checkpoint"])
    path = resolve(choice)
    if not path.is_file():
        raise InputDataError(f"lora {path} does not exist", fix='give a .safetensors file, "recommended" or "none"')
    return path


@contextmanager
def diffusers_errors_only() -> Iterator[None]:
    """Silence diffusers' warnings for a call (per-file notes on UNet-only LoRAs, VAE casting on every image)."""
    from diffusers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)


def load_lora(pipe, lora_file: str | Path, adapter: str = ADAPTER) -> None:
    """Load a LoRA (kohya or diffusers keys) into the pipeline as a named adapter; a bad file is one clear error."""
    path = Path(lora_file)
    if not path.is_file():
        raise ModelLoadError(f"LoRA file {path} does not exist", fix="set lora to a .safetensors file, 'recommended' or 'none'")
    try:
        with diffusers_errors_only():
            pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=adapter)
    except Exception as err:  # noqa: BLE001 - any loader failure names the file
        raise ModelLoadError(
            f"could not load LoRA {path} into {pipe.__class__.__name__}: {type(err).__name__}: {err}",
            fix="use a LoRA trained for this SDXL base model (03_training writes them under <workspace>/lora/)",
        ) from err


def set_lora_scale(pipe, scale: float, adapter: str = ADAPTER) -> None:
    """Weight of a loaded LoRA (0 = the base model alone); a no-op when that adapter is not loaded."""
    if adapter in pipe.get_list_adapters().get("unet", []):
        pipe.set_adapters([adapter], adapter_weights=[scale])
