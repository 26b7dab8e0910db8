"""Leakage and concept bleed: does the character's face spread to people who are not the character?

Leakage: in a prompt with the character *and* someone else, every face but the one most like the
character belongs to another person; the share of those that still pass the same-person threshold is
the leak rate (users see it as "everyone in the group photo has her face"). Concept bleed: faces drawn
for the class prompt without the trigger ("photo of a woman") should look like anyone; their cosine to
the character, against the base model's, says how much the LoRA rewrote the class itself, which is
what prior preservation exists to prevent.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .faces import Face
from .inputs import without_word

CHARACTER_KINDS = ("holdout", "context")  # prompts that ask for the character: identity, fidelity, diversity
LEAKAGE, BLEED = "leakage", "bleed"


def extra_prompts(first_id: int, leakage: Sequence[str], bleed: Sequence[str], trigger: str, class_word: str) -> pd.DataFrame:
    """Leakage prompts (`{character}` filled) and bleed prompts (`{class_word}` filled, no trigger), ids after `first_id`."""
    character = f"{trigger} {class_word}"
    rows = [(LEAKAGE, t.replace("{character}", character)) for t in leakage] + [(BLEED, t.replace("{class_word}", class_word)) for t in bleed]
    table = pd.DataFrame(rows, columns=["kind", "prompt"])
    table.insert(0, "prompt_id", [f"{k[0]}{first_id + i}" for i, k in enumerate(table["kind"])])
    table["clip_text"] = [without_word(t, trigger) for t in table["prompt"]]
    return table


def leak_counts(faces: Sequence[Sequence[Face]], reference: np.ndarray | None, threshold: float) -> pd.DataFrame:
    """Per image: faces other than the one most like the character, and how many of them pass the threshold.

    NaN for both where no reference identity exists; 0 other faces where the image has one face or none.
    """
    others, leaked = [], []
    for found in faces:
        cos = [] if reference is None else sorted((float(f.vector @ reference) for f in found), reverse=True)[1:]
        others.append(np.nan if reference is None else len(cos))  # the best match is the character; the rest are others
        leaked.append(np.nan if reference is None else sum(c >= threshold for c in cos))
    return pd.DataFrame({"other_faces": others, "leaked_faces": leaked})


def leak_summary(images: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per checkpoint: other people's faces found in the leakage prompts and the share that look like the character."""
    part = images[images["kind"] == LEAKAGE]
    table = part.groupby(keys, as_index=False, sort=False)[["other_faces", "leaked_faces"]].sum(min_count=1)
    table["leak_rate"] = (table["leaked_faces"] / table["other_faces"]).where(table["other_faces"] > 0)
    return table


def bleed_summary(images: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per checkpoint: faces found for the class prompt, their mean cosine to the character, the share passing as
    the character, and the rise of that cosine over the base model's (the class before training)."""
    part = images[(images["kind"] == BLEED) & images["face_found"]]
    table = images.loc[images["kind"] == BLEED, keys].drop_duplicates().reset_index(drop=True)
    g = part.groupby(keys, as_index=False, sort=False).agg(bleed_faces=("identity", "count"), bleed=("identity", "mean"),
                                                           bleed_pass=("identity_pass", "mean"))  # fmt: skip
    table = table.merge(g, on=keys, how="left").fillna({"bleed_faces": 0})
    base = table.loc[table["scale"] == 0, "bleed"]  # the base model (no LoRA) draws the class as it was
    table["bleed_rise"] = table["bleed"] - (base.iloc[0] if len(base) else np.nan)
    return table


def leakage_note(summary: pd.DataFrame, leakage_prompts: int, bleed_prompts: int) -> str:
    """One honest sentence per metric: measured, or why not (no prompts, or no faces found)."""
    def said(what: str, prompts: int, column: str, faces: str) -> str:
        if not prompts:
            return f"{what}: not measured (no prompts given)."
        if column not in summary or summary[column].isna().all():
            return f"{what}: no faces found in its images (or none in the held-out photos), so it is left empty (NaN: not measured)."
        return f"{what}: measured on {int(summary[faces].sum())} faces."

    return " ".join((said("Leakage", leakage_prompts, "leak_rate", "other_faces"), said("Concept bleed", bleed_prompts, "bleed", "bleed_faces")))
