"""CLIP and DINOv2 embeddings: CLIP-T (image-text), CLIP-I and DINO (image-image), as DreamBooth measures them.

Models load through `pistachio_nb.models` (hub id on the pod, tiny random model in the demo); every
vector comes back L2-normalised as float32 numpy, so similarities are plain dot products.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from ..models import ModelAndProcessor

BATCH = 16


def _normalise(t: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.normalize(t.float(), dim=-1).cpu().numpy()


def _batched(items: Sequence, embed) -> np.ndarray:
    chunks = [embed(list(items[i : i + BATCH])) for i in range(0, len(items), BATCH)]
    return np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)


def _inputs(model, batch) -> dict:
    return {k: v.to(model.device, model.dtype if v.is_floating_point() else v.dtype) for k, v in batch.items()}


@torch.no_grad()
def clip_image_embeddings(clip: ModelAndProcessor, images: Sequence[Image.Image]) -> np.ndarray:
    """CLIP image embeddings (the projected pooled output)."""
    def embed(chunk):
        batch = clip.processor(images=[im.convert("RGB") for im in chunk], return_tensors="pt")
        return _normalise(clip.model.get_image_features(**_inputs(clip.model, batch)).pooler_output)

    return _batched(images, embed)


@torch.no_grad()
def clip_text_embeddings(clip: ModelAndProcessor, texts: Sequence[str]) -> np.ndarray:
    """CLIP text embeddings; long prompts are cut at CLIP's 77 tokens, as the generator's encoder does."""
    def embed(chunk):
        batch = clip.processor(text=chunk, return_tensors="pt", padding=True, truncation=True)
        return _normalise(clip.model.get_text_features(**_inputs(clip.model, batch)).pooler_output)

    return _batched(texts, embed)


@torch.no_grad()
def dino_embeddings(dino: ModelAndProcessor, images: Sequence[Image.Image]) -> np.ndarray:
    """DINOv2 image embeddings (the normalised CLS token), sensitive to the subject's appearance, not its label."""
    def embed(chunk):
        batch = dino.processor(images=[im.convert("RGB") for im in chunk], return_tensors="pt")
        return _normalise(dino.model(**_inputs(dino.model, batch)).pooler_output)

    return _batched(images, embed)


def mean_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each row of `a`, the mean cosine similarity to all rows of `b` (DreamBooth's CLIP-I / DINO)."""
    return (a @ b.T).mean(axis=1)


def paired_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two equally long lists of unit vectors (CLIP-T: image i vs its prompt)."""
    return np.einsum("ij,ij->i", a, b)
