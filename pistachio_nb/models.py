"""One way to load every model: a hub id, a local folder or `tiny:<kind>`, all via `from_pretrained(path)`.

`tiny:<kind>` is built once (see `tiny_models`) into `outputs/models/tiny-<kind>/` and from then on
is just a local folder, so the demo exercises exactly the loading code the pod runs. A hub id is the
verified snapshot 00_setup downloaded (`hub_models.local_snapshot`), also a local folder: nothing is
downloaded at load time, and a missing snapshot stops with the command that fetches it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import torch

from . import hub_models, tiny_models
from .dirs import atomic_dir
from .errors import ModelLoadError, PistachioError
from .paths import resolve

TINY_PREFIX = "tiny:"
TINY_ROOT = "outputs/models"
MARKER = "pistachio_tiny.json"  # written last into a finished tiny model folder
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
T = TypeVar("T")


class ModelAndProcessor(NamedTuple):
    """A transformers model with the processor that prepares its inputs."""

    model: Any
    processor: Any


# --------------------------------------------------------------------------- resolving
def ensure_tiny(kind: str, root: str | Path | None = None) -> Path:
    """Folder of tiny model `kind`, built on first use into a temp folder then renamed into place."""
    if kind not in tiny_models.BUILDERS:
        raise ModelLoadError(
            f"unknown tiny model kind {kind!r} in model reference 'tiny:{kind}'",
            fix=f"use one of {', '.join('tiny:' + k for k in tiny_models.BUILDERS)}, a hub id or a local path",
        )
    root = resolve(root or TINY_ROOT)
    dest = root / f"tiny-{kind}"
    stamp = {"kind": kind, "seed": tiny_models.SEED, "version": tiny_models.VERSION}
    if _read_marker(dest) == stamp:
        return dest
    try:
        with atomic_dir(dest) as tmp:
            tiny_models.build_tiny(kind, tmp)
            (tmp / MARKER).write_text(json.dumps(stamp), encoding="utf-8")
    except OSError:
        if _read_marker(dest) != stamp:  # not a concurrent builder that finished the same model first
            raise
    return dest


def _read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def resolve_model(ref: str) -> str:
    """Turn a model reference into the local folder `from_pretrained` loads (a hub id: its verified snapshot)."""
    return _resolve(ref)[0]


def _resolve(ref: str) -> tuple[str, str | None]:
    """(local folder, weights variant) of a model reference; a hub id resolves only to a verified snapshot."""
    ref = str(ref).strip()
    if ref.startswith(TINY_PREFIX):
        return str(ensure_tiny(ref[len(TINY_PREFIX) :])), None
    local = resolve(ref)
    if local.exists():
        return str(local), None
    if ref.startswith(("/", ".", "~")) or ref.count("/") > 1 or not _HUB_ID.match(ref):
        raise ModelLoadError(
            f"model path {ref!r} does not exist (looked at {local})",
            fix="correct the path in the params, download the model there first (00_setup), "
            "or give a hub id like 'stabilityai/stable-diffusion-xl-base-1.0' or 'tiny:sdxl'",
        )
    found = hub_models.local_snapshot(ref)
    if found is None:
        raise ModelLoadError(
            f"hub model {ref!r} is not downloaded: no verified snapshot in the hub cache {hub_models.hub_cache_dir()} "
            f"(HF_HOME={os.environ.get('HF_HOME') or 'unset'}); stages never download",
            fix="list it under hub: in the profile's models manifest (params/models-pod.yaml) and run "
            "`pistachio models --params params/pod.yaml` (or 00_setup) with the same HF_HOME",
        )
    return str(found[0]), found[1]


# --------------------------------------------------------------------------- device and dtype
def pick_device() -> str:
    """`cuda` on the pod, `cpu` here."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(device: str) -> torch.dtype:
    """bf16 (or fp16 on older GPUs) on CUDA to halve memory; fp32 on CPU, where half precision is slow or missing."""
    if str(device).startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


# --------------------------------------------------------------------------- loaders
def _load(ref: str, what: str, loader: Callable[[str, dict], T]) -> T:
    """Resolve `ref` and call `loader(resolved, weight_kwargs)`, turning any failure into ModelLoadError."""
    resolved, variant = _resolve(ref)
    kwargs = {"variant": variant} if variant else {}  # e.g. the fp16 weights the manifest chose
    try:
        return loader(resolved, kwargs)
    except PistachioError:
        raise
    except Exception as err:  # noqa: BLE001 - any library failure becomes one clear error
        raise ModelLoadError(
            f"could not load {what} from {ref!r} (resolved to {resolved}): {type(err).__name__}: {err}",
            fix="check the model reference: a complete local folder, a hub id downloaded and verified by "
            "`pistachio models --params ...` (00_setup), or 'tiny:<kind>' for the demo",
        ) from err


def load_sdxl_pipeline(ref: str, device: str | None = None, dtype: torch.dtype | dict | None = None):
    """A `StableDiffusionXLPipeline` on `device` in `dtype` (defaults: pick_device / pick_dtype); a dict
    gives per-component dtypes, e.g. {"default": torch.bfloat16, "vae": torch.float32}."""
    from diffusers import StableDiffusionXLPipeline

    device = device or pick_device()
    dtype = dtype or pick_dtype(device)

    def load(path: str, kw: dict):
        pipe = StableDiffusionXLPipeline.from_pretrained(path, dtype=dtype, **kw)
        pipe.set_progress_bar_config(disable=True)
        return pipe.to(device)

    return _load(ref, "the SDXL pipeline", load)


def _model_and_processor(model_cls: Any, processor_cls: Any, device: str | None, dtype: torch.dtype | None):
    """Loader for a transformers model + processor pair, in eval mode on the device."""
    device = device or pick_device()
    dtype = dtype or pick_dtype(device)

    def load(path: str, kw: dict) -> ModelAndProcessor:
        model = model_cls.from_pretrained(path, dtype=dtype, **kw).to(device).eval()
        return ModelAndProcessor(model, processor_cls.from_pretrained(path))  # kw (the variant) names weights only

    return load


def load_captioner(ref: str, device: str | None = None, dtype: torch.dtype | None = None) -> ModelAndProcessor:
    """An image-to-text captioner (Florence-2, BLIP, ...) and its processor."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return _load(ref, "the captioner", _model_and_processor(AutoModelForImageTextToText, AutoProcessor, device, dtype))


def load_clip(ref: str, device: str | None = None, dtype: torch.dtype | None = None) -> ModelAndProcessor:
    """A CLIP model and processor, for text-image (CLIP-T) and image-image (CLIP-I) similarity."""
    from transformers import CLIPModel, CLIPProcessor

    return _load(ref, "the CLIP model", _model_and_processor(CLIPModel, CLIPProcessor, device, dtype))


def load_dinov2(ref: str, device: str | None = None, dtype: torch.dtype | None = None) -> ModelAndProcessor:
    """A DINOv2 backbone and image processor, for identity similarity between images."""
    from transformers import AutoImageProcessor, AutoModel

    return _load(ref, "the DINOv2 model", _model_and_processor(AutoModel, AutoImageProcessor, device, dtype))
