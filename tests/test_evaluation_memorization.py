"""Memorization (nearest training image by pHash and embedding) and seed diversity on real sample photos."""

import io

import numpy as np
import pandas as pd
import pywt
from matplotlib import cbook
from PIL import Image, ImageEnhance

from pistachio_nb.evaluation.diversity import mean_pairwise_distance, seed_diversity
from pistachio_nb.evaluation.memorization import flag_copies, nearest_training, phashes


def gray(array) -> Image.Image:
    return Image.fromarray(np.asarray(array).astype(np.uint8)).convert("RGB")


def training_photos():
    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
        hopper = im.convert("RGB")
    return {"hopper.png": hopper, "camera.png": gray(pywt.data.camera()), "ascent.png": gray(pywt.data.ascent())}


def recompressed(image: Image.Image) -> Image.Image:
    """What a memorized output looks like: the training photo at another size, brighter, JPEG-encoded."""
    buf = io.BytesIO()
    ImageEnhance.Brightness(image.resize((256, 300))).enhance(1.1).save(buf, "JPEG", quality=70)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def test_a_copy_of_a_training_image_is_flagged_and_a_new_image_is_not():
    train = training_photos()
    generated = [recompressed(train["camera.png"]), gray(pywt.data.aero())]
    unit = np.eye(3, dtype=np.float32)  # embedding view kept neutral: only pHash decides here
    near = nearest_training(phashes(generated), phashes(list(train.values())), np.full((2, 3), 1 / 3**0.5, np.float32), unit, list(train))
    assert near.loc[0, "nearest_by_phash"] == "camera.png" and near.loc[0, "phash_distance"] <= 6
    assert near.loc[1, "phash_distance"] > 16
    assert flag_copies(near, max_phash_distance=8, min_similarity=0.99).tolist() == [True, False]


def test_embedding_view_flags_what_pixels_miss():
    gen = np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    train = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    far_hashes = np.zeros((2, 64), bool), np.ones((2, 64), bool)
    near = nearest_training(*far_hashes, gen, train, ["a.png", "b.png"])
    assert near["nearest_by_embedding"].tolist() == ["b.png", "a.png"]
    assert np.allclose(near["train_similarity"], [1.0, 0.8])
    assert flag_copies(near, max_phash_distance=8, min_similarity=0.95).tolist() == [True, False]


def test_diversity_is_zero_for_collapsed_seeds_and_grows_with_difference():
    same = np.tile([[1.0, 0.0]], (3, 1))
    spread = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    assert mean_pairwise_distance(same) == 0.0
    assert mean_pairwise_distance(spread) > 0.9
    assert np.isnan(mean_pairwise_distance(same[:1]))
    images = pd.DataFrame({"checkpoint": ["a"] * 3 + ["b"] * 3, "prompt_id": ["p"] * 6})
    table = seed_diversity(images, np.concatenate([same, spread]), ["checkpoint", "prompt_id"]).set_index("checkpoint")
    assert table.loc["a", "diversity"] == 0.0 and table.loc["b", "diversity"] > 0.9
