"""CLIP / DINOv2 embedding helpers on the tiny random models (same from_pretrained path as the pod)."""

import numpy as np
import pytest
from PIL import Image, ImageOps

from pistachio_nb.evaluation import embeddings as emb
from pistachio_nb.models import load_clip, load_dinov2


@pytest.fixture(scope="module")
def models():
    return load_clip("tiny:clip", "cpu"), load_dinov2("tiny:dinov2", "cpu")


def images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)) for _ in range(n)]


def test_vectors_are_unit_length_and_batching_does_not_change_them(models, monkeypatch):
    clip, dino = models
    pics = images(5)
    whole = emb.dino_embeddings(dino, pics), emb.clip_image_embeddings(clip, pics)
    monkeypatch.setattr(emb, "BATCH", 2)  # 3 chunks instead of 1
    chunked = emb.dino_embeddings(dino, pics), emb.clip_image_embeddings(clip, pics)
    for a, b in zip(whole, chunked):
        assert a.shape[0] == 5 and np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
        assert np.allclose(a, b, atol=1e-5)


def test_same_image_is_most_similar_to_itself(models):
    _, dino = models
    pics = images(3)
    vectors = emb.dino_embeddings(dino, [*pics, ImageOps.mirror(pics[0])])
    sims = emb.mean_similarity(vectors[:1], vectors[:1])
    assert sims[0] == pytest.approx(1.0, abs=1e-5)
    assert (vectors[0] @ vectors[1:].T).max() < 1 - 1e-4


def test_clip_text_handles_prompts_longer_than_77_tokens(models):
    clip, _ = models
    long_prompt = ", ".join(["red dress"] * 80)
    texts = emb.clip_text_embeddings(clip, ["photo of a woman", long_prompt])
    image = emb.clip_image_embeddings(clip, images(2))
    scores = emb.paired_similarity(image, texts)
    assert texts.shape == (2, image.shape[1]) and np.all(np.abs(scores) <= 1 + 1e-5)
