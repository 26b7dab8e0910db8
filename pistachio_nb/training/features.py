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

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..files import atomic_path
from .data import Example, load_pixels, shuffle_caption
from .sdxl import encode_captions, encode_latents


class DiskCache:
    """Tensors on disk (one safetensors per key) with an in-memory copy of what was read."""

    def __init__(self, folder: Path, namespace: str) -> None:
        self.folder, self.namespace, self.memory = folder, namespace, {}

    def _key(self, parts: tuple) -> str:
        return hashlib.sha1(json.dumps([self.namespace, *parts]).encode()).hexdigest()

    def get(self, parts: tuple, compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        if parts not in self.memory:
            path = self.folder / f"{self._key(parts)}.safetensors"
            if path.exists():
                self.memory[parts] = load_file(path)
            else:
                tensors = {k: v.detach().cpu().contiguous() for k, v in compute().items()}
                with atomic_path(path) as tmp:
                    save_file(tensors, tmp)
                self.memory[parts] = tensors
        return self.memory[parts]


@dataclass
class Batch:
    """One micro-batch ready for the UNet."""

    latents: torch.Tensor
    prompt_embeds: torch.Tensor
    pooled: torch.Tensor
    time_ids: torch.Tensor


class Featurizer:
    """Turns examples into a Batch, through the caches when they are enabled."""

    def __init__(self, pipe, cache_dir: Path, model_id: str, cache_latents: bool, cache_text: bool,
                 shuffle_captions: bool, train_text: bool, rng: random.Random, encoders: tuple | None = None) -> None:  # fmt: skip
        self.pipe, self.rng, self.shuffle, self.train_text = pipe, rng, shuffle_captions, train_text
        self.encoders = encoders  # the trained encoders' wrappers, when they train
        self.dtype = pipe.unet.dtype  # read once: diffusers computes it by walking the parameters
        vae_id = json.dumps(dict(pipe.vae.config), sort_keys=True, default=str)
        self.latent_cache = DiskCache(cache_dir / "latents", f"{model_id}|{vae_id}") if cache_latents else None
        self.text_cache = DiskCache(cache_dir / "text", model_id) if cache_text else None

    def latents(self, examples: list[Example]) -> torch.Tensor:
        def encode(ex: Example) -> torch.Tensor:
            return encode_latents(self.pipe, load_pixels(ex)[None])[0]

        if self.latent_cache is None:
            return torch.stack([encode(ex) for ex in examples])
        entries = [self.latent_cache.get((ex.key, ex.size), lambda ex=ex: {"latents": encode(ex)}) for ex in examples]
        return torch.stack([e["latents"] for e in entries])

    def text(self, captions: list[str], shuffle: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        if self.shuffle and shuffle:
            captions = [shuffle_caption(c, self.rng) for c in captions]
        if self.text_cache is None:
            with torch.set_grad_enabled(self.train_text and torch.is_grad_enabled()):
                return encode_captions(self.pipe, captions, self.encoders)

        def encode(caption: str) -> dict[str, torch.Tensor]:
            with torch.no_grad():
                emb, pooled = encode_captions(self.pipe, [caption])
            return {"prompt_embeds": emb[0], "pooled": pooled[0]}

        entries = [self.text_cache.get((c,), lambda c=c: encode(c)) for c in captions]
        return torch.stack([e["prompt_embeds"] for e in entries]), torch.stack([e["pooled"] for e in entries])

    def batch(self, examples: list[Example], device: torch.device | str, shuffle: bool = True) -> Batch:
        """Latents in fp32 (noise is added there); conditioning in the frozen weights' dtype.
        `shuffle=False` keeps captions as written (validation asks the same question every time)."""
        emb, pooled = self.text([ex.caption for ex in examples], shuffle)
        time_ids = torch.tensor([ex.time_ids() for ex in examples])
        cond = (t.to(device, self.dtype) for t in (emb, pooled, time_ids))
        return Batch(self.latents(examples).to(device, torch.float32), *cond)

    def warm(self, examples: list[Example]) -> None:
        """Fill the caches up front (one pass), so the timed loop only reads."""
        if self.latent_cache is None and self.text_cache is None:
            return
        for ex in tqdm(examples, desc="caching latents/embeddings"):
            if self.latent_cache is not None:
                self.latents([ex])
            if self.text_cache is not None:
                self.text([ex.caption])
