"""Leakage (the character's face on other people) and concept bleed (the class prompt drifting toward the
character), measured on real photos: Grace Hopper is the character, the cameraman the other person."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pistachio_nb.evaluation.faces import SFaceEmbedder, embed_faces, reference_identity
from pistachio_nb.evaluation.identity_check import pass_share, photo_variants, real_people
from pistachio_nb.evaluation.leakage import BLEED, bleed_summary, extra_prompts, leak_counts, leak_summary, leakage_note
from pistachio_nb.evaluation.recommend import Rule, judge

from .face_photos import side_by_side

THRESHOLD = 0.363  # SFace's published same-person cosine
KEYS = ["checkpoint", "step", "scale"]


@pytest.fixture(scope="module")
def embedder():
    return SFaceEmbedder()


@pytest.fixture(scope="module")
def people():
    return real_people()


@pytest.fixture(scope="module")
def character(embedder, people):
    return reference_identity(embed_faces(embedder, [people["hopper"]]))


def bleed_images(embedder, character, rows):
    """An images table of class-prompt outputs: (checkpoint, step, scale, picture) per row, scored like compare does."""
    faces = embed_faces(embedder, [im for *_, im in rows])
    identity = pd.Series([float(f.vector @ character) if f else np.nan for f in faces])
    return pd.DataFrame({"checkpoint": [r[0] for r in rows], "step": [r[1] for r in rows], "scale": [r[2] for r in rows],
                         "kind": BLEED, "face_found": [f is not None for f in faces], "identity": identity,
                         "identity_pass": pass_share(identity, THRESHOLD)})  # fmt: skip


def test_concept_bleed_rises_when_the_class_prompt_draws_the_character(embedder, character, people):
    strangers = photo_variants({"cameraman": people["cameraman"]})["image"].tolist()[:3]
    her = photo_variants({"hopper": people["hopper"]})["image"].tolist()[1:4]
    rows = ([("base", 0, 0.0, im) for im in strangers] + [("early", 100, 1.0, im) for im in strangers[:2] + her[:1]]
            + [("late", 200, 1.0, im) for im in her])  # fmt: skip
    table = bleed_summary(bleed_images(embedder, character, rows), KEYS).set_index("checkpoint")
    assert table["bleed_faces"].tolist() == [3, 3, 3]
    assert table.loc["base", "bleed"] < 0.2 and table.loc["base", "bleed_rise"] == 0 and table.loc["base", "bleed_pass"] == 0
    assert table.loc["early", "bleed_pass"] == pytest.approx(1 / 3) and table.loc["late", "bleed_pass"] == 1
    assert table.loc["late", "bleed_rise"] > 0.6 > table.loc["early", "bleed_rise"] > 0.2
    summary = table.reset_index().assign(path=[None, "/l/early.safetensors", "/l/late.safetensors"], identity=[0.1, 0.8, 0.8],
                                         identity_score=[0.1, 0.8, 0.8], face_rate=1.0, clip_t=0.3, diversity=0.5, copy_rate=0.0, dino=0.5)
    verdicts, _ = judge(summary, Rule(0.03, 0.1, 0.3, 0.1, leakage_max=0.1, bleed_rise=0.5))
    assert verdicts["verdict"].tolist() == ["ok", "overfit"] and "concept bleed" in verdicts["signs"].iloc[1]


def with_face_of(embedder, target: Image.Image, donor: Image.Image) -> Image.Image:
    """`target` with the donor's face pasted over its own face box: the character's face on a second person."""
    (t,), (d,) = embedder.embed_all(target), embedder.embed_all(donor)
    grow = lambda b: (b[0] - 0.2 * b[2], b[1] - 0.2 * b[3], b[0] + 1.2 * b[2], b[1] + 1.2 * b[3])  # noqa: E731
    box = tuple(round(v) for v in grow(t.box))
    face = donor.crop(tuple(round(v) for v in grow(d.box))).resize((box[2] - box[0], box[3] - box[1]))
    out = target.copy()
    out.paste(face, box[:2])
    return out


def test_a_pasted_copy_of_the_characters_face_on_a_second_person_counts_as_leaked(embedder, character, people):
    hopper, cameraman = people["hopper"], people["cameraman"]
    group = side_by_side(hopper, cameraman)  # the character and a stranger
    leaked_group = side_by_side(hopper, with_face_of(embedder, cameraman, hopper))  # the stranger wears her face
    found = [embedder.embed_all(im) for im in (group, leaked_group, hopper)]
    assert [len(f) for f in found] == [2, 2, 1]
    counts = leak_counts(found, character, THRESHOLD)
    assert counts["other_faces"].tolist() == [1, 1, 0] and counts["leaked_faces"].tolist() == [0, 1, 0]
    images = pd.concat([pd.DataFrame({"checkpoint": ["ok", "leaky", "ok"], "step": [1, 2, 1], "scale": 1.0,
                                      "kind": "leakage"}), counts], axis=1)  # fmt: skip
    table = leak_summary(images, KEYS).set_index("checkpoint")
    assert table.loc["ok", "leak_rate"] == 0 and table.loc["leaky", "leak_rate"] == 1


def test_no_faces_gives_nan_and_says_so_never_a_number(embedder):
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    counts = leak_counts([[], []], None, THRESHOLD)  # no reference face at all
    assert counts.isna().all().all()
    counts = leak_counts([[], []], np.ones(128) / np.sqrt(128), THRESHOLD)  # a reference, but no faces drawn
    images = pd.concat([pd.DataFrame({"checkpoint": "c", "step": 1, "scale": 1.0, "kind": "leakage"}, index=[0, 1]), counts], axis=1)
    leak = leak_summary(images, KEYS)
    assert leak["other_faces"].tolist() == [0] and np.isnan(leak["leak_rate"].iloc[0])
    bleed = bleed_summary(bleed_images(embedder, np.ones(128) / np.sqrt(128), [("base", 0, 0.0, noise), ("c", 1, 1.0, noise)]), KEYS)
    assert bleed["bleed_faces"].tolist() == [0, 0] and bleed["bleed"].isna().all() and bleed["bleed_rise"].isna().all()
    note = leakage_note(leak.merge(bleed, on=KEYS, how="outer"), leakage_prompts=1, bleed_prompts=1)
    assert note.count("no faces found") == 2 and "NaN" in note
    assert "not measured (no prompts given)" in leakage_note(leak, leakage_prompts=0, bleed_prompts=0)
    verdicts, _ = judge(leak.merge(bleed, on=KEYS).assign(path="/l/c.safetensors", identity=np.nan, identity_score=0.0,
                        face_rate=0.0, clip_t=0.3, diversity=0.5, copy_rate=0.0, dino=0.5), Rule(0.03, 0.1, 0.3, 0.1, 0.1, 0.1))
    assert "leakage" not in verdicts["signs"].iloc[0] and "bleed" not in verdicts["signs"].iloc[0]  # NaN is no verdict


def test_extra_prompts_fill_the_character_and_leave_the_trigger_out_of_bleed():
    table = extra_prompts(2, ["{character} and her friend at a cafe"], ["photo of a {class_word}"], "ohwx", "woman")
    assert table["prompt_id"].tolist() == ["l2", "b3"] and table["kind"].tolist() == ["leakage", "bleed"]
    assert table["prompt"].tolist() == ["ohwx woman and her friend at a cafe", "photo of a woman"]
    assert table["clip_text"].tolist() == ["woman and her friend at a cafe", "photo of a woman"]
