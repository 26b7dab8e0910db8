"""What the UNet consumes per batch (latents, caption embeddings, time ids), optionally cached on disk.

Caching encodes each image (and each caption, when the text encoders are frozen) once; entries are
keyed by content and model, so reruns and resumes reuse them. Latents are the VAE mean either way,
so cached and uncached training see identical inputs and caching is purely a speed choice.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..files import atomic_path
from .captions import CaptionPolicy
from .data import Example, load_pixels
from .sdxl import encode_captions, encode_latents

if TYPE_CHECKING:
    from .masks import MaskWeights


class DiskCache:
    """Tensors on disk (one safetensors per key) with an in-memory copy of what was read."""

    def __init__(self, folder: Path, namespace: str) -> None:
        self.folder, self.namespace, self.memory = folder, namespace, {}

    def _path(self, parts: tuple) -> Path:
        return self.folder / f"{hashlib.sha1(json.dumps([self.namespace, *parts]).encode()).hexdigest()}.safetensors"

    def get_many(self, keys: list[tuple], compute: Callable[[list[tuple]], list[dict[str, torch.Tensor]]]) -> list[dict]:
        """The entry of every key; the ones on neither memory nor disk are computed in one `compute(missing)` call."""
        for key in dict.fromkeys(k for k in keys if k not in self.memory and self._path(k).exists()):
            self.memory[key] = load_file(self._path(key))
        missing = list(dict.fromkeys(k for k in keys if k not in self.memory))
        for key, computed in zip(missing, compute(missing) if missing else []):
            tensors = {k: v.detach().cpu().contiguous() for k, v in computed.items()}
            with atomic_path(self._path(key)) as tmp:
                save_file(tensors, tmp)
            self.memory[key] = tensors
        return [self.memory[k] for k in keys]


@dataclass
class Batch:
    """One micro-batch ready for the UNet."""

    latents: torch.Tensor
    prompt_embeds: torch.Tensor
    pooled: torch.Tensor
    time_ids: torch.Tensor
    weights: torch.Tensor | None = None  # (B, 1, h, w) loss weights at latent resolution (masked loss); None: uniform


class Featurizer:
    """Turns examples into a Batch, through the caches when they are enabled; each batch is encoded in one call."""

    def __init__(self, pipe, cache_dir: Path, model_id: str, cache_latents: bool, cache_text: bool,
                 captions: CaptionPolicy, train_text: bool, rng: random.Random, encoders: tuple | None = None,
                 masks: MaskWeights | None = None) -> None:  # fmt: skip
        self.pipe, self.rng, self.captions, self.train_text, self.masks = pipe, rng, captions, train_text, masks
        self.encoders = encoders  # the trained encoders' wrappers, when they train
        self.dtype = pipe.unet.dtype  # read once: diffusers computes it by walking the parameters
        vae_id = json.dumps(dict(pipe.vae.config), sort_keys=True, default=str)
        self.latent_cache = DiskCache(cache_dir / "latents", f"{model_id}|{vae_id}") if cache_latents else None
        self.text_cache = DiskCache(cache_dir / "text", model_id) if cache_text else None

    def _encode_images(self, examples: list[Example]) -> torch.Tensor:
        return encode_latents(self.pipe.vae, torch.stack([load_pixels(ex) for ex in examples]))

    def latents(self, examples: list[Example]) -> torch.Tensor:
        """Latents of same-size examples: one VAE call for the batch (or for the cache's missing entries)."""
        if self.latent_cache is None:
            return self._encode_images(examples)
        keys = [(ex.key, ex.size) for ex in examples]
        by_key = dict(zip(keys, examples))

        def compute(missing: list[tuple]) -> list[dict[str, torch.Tensor]]:
            return [{"latents": x} for x in self._encode_images([by_key[k] for k in missing])]

        return torch.stack([e["latents"] for e in self.latent_cache.get_many(keys, compute)])

    def text(self, captions: list[str], vary: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        if vary and self.captions.active:
            captions = [self.captions.apply(c, self.rng) for c in captions]
        if self.text_cache is None:
            with torch.set_grad_enabled(self.train_text and torch.is_grad_enabled()):
                return encode_captions(self.pipe, captions, self.encoders)

        def compute(keys: list[tuple]) -> list[dict[str, torch.Tensor]]:
            with torch.no_grad():
                emb, pooled = encode_captions(self.pipe, [k[0] for k in keys])
            return [{"prompt_embeds": e, "pooled": p} for e, p in zip(emb, pooled)]

        entries = self.text_cache.get_many([(c,) for c in captions], compute)
        return torch.stack([e["prompt_embeds"] for e in entries]), torch.stack([e["pooled"] for e in entries])

    def batch(self, examples: list[Example], device: torch.device | str, vary: bool = True) -> Batch:
        """Latents in fp32 (noise is added there); conditioning in the frozen weights' dtype.
        `vary=False` keeps captions as written (validation asks the same question every time)."""
        emb, pooled = self.text([ex.caption for ex in examples], vary)
        time_ids = torch.tensor([ex.time_ids() for ex in examples])
        cond = (t.to(device, self.dtype) for t in (emb, pooled, time_ids))
        weights = self.masks.weights(examples) if self.masks else None
        return Batch(self.latents(examples).to(device, torch.float32), *cond,
                     weights.to(device, torch.float32) if weights is not None else None)

    def warm(self, examples: list[Example], batch_size: int) -> None:
        """Fill the caches up front (one pass, `batch_size` same-size examples per encoder call)."""
        if self.latent_cache is None and self.text_cache is None:
            return
        groups = [[ex for ex in examples if ex.size == size] for size in sorted({ex.size for ex in examples})]
        chunks = [g[i : i + batch_size] for g in groups for i in range(0, len(g), batch_size)]
        for chunk in tqdm(chunks, desc="caching latents/embeddings"):
            if self.latent_cache is not None:
                self.latents(chunk)
            if self.text_cache is not None:
                self.text([ex.caption for ex in chunk], vary=False)
