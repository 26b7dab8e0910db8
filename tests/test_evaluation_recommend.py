"""The recommendation rule on constructed per-checkpoint tables: under-, well- and over-fitted checkpoints."""

import numpy as np
import pandas as pd
import pytest

from pistachio_nb.errors import InputDataError
from pistachio_nb.evaluation.recommend import Rule, judge, read_recommendation, recommend

RULE = Rule(identity_tolerance=0.03, fidelity_drop=0.1, diversity_drop=0.3, memorization_rise=0.1)


def table(rows):
    """Rows of (step, identity, clip_t, diversity, copy_rate); step 0 is the base model (no path)."""
    df = pd.DataFrame(rows, columns=["step", "identity", "clip_t", "diversity", "copy_rate"])
    df["checkpoint"] = [f"char-{s:06d}" if s else "base" for s in df["step"]]
    df["path"] = [f"/ws/lora/char-{s:06d}.safetensors" if s else None for s in df["step"]]
    df["scale"], df["dino"] = [0.0 if s == 0 else 1.0 for s in df["step"]], 0.5
    df["face_rate"] = df["identity"].notna().astype(float)
    df["identity_score"] = df["identity"].fillna(0.0) * df["face_rate"]
    return df


UNDER_GOOD_OVER = table([
    (0, 0.10, 0.33, 0.50, 0.0),    # base model: never a candidate
    (250, 0.35, 0.32, 0.48, 0.0),  # under: identity far below the best
    (500, 0.66, 0.31, 0.45, 0.0),  # good
    (750, 0.68, 0.30, 0.40, 0.0),  # as good, later: not preferred
    (1000, 0.69, 0.24, 0.20, 0.5),  # over: best identity, but prompts ignored, seeds collapse, copies
])  # fmt: skip


def test_picks_the_earliest_good_checkpoint_and_names_the_signs():
    rec = recommend(UNDER_GOOD_OVER, RULE)
    assert (rec.step, rec.checkpoint, rec.identity_metric) == (500, "/ws/lora/char-000500.safetensors", "identity")
    verdicts = rec.signs.set_index("step")["verdict"]
    assert verdicts.to_dict() == {250: "underfit", 500: "ok", 750: "ok", 1000: "overfit"}
    over = rec.signs.set_index("step").loc[1000, "signs"]
    assert "prompt fidelity" in over and "seed diversity" in over and "copy a training image" in over
    assert "step 1000" in rec.reason and "earliest" in rec.reason
    assert 0 not in rec.signs["step"].tolist()


@pytest.mark.parametrize("tolerance, expected", [(0.0, 750), (0.03, 500), (0.5, 250)])
def test_identity_tolerance_decides_how_early(tolerance, expected):
    rule = Rule(tolerance, RULE.fidelity_drop, RULE.diversity_drop, RULE.memorization_rise)
    assert recommend(UNDER_GOOD_OVER, rule).step == expected


def test_all_underfit_but_one_picks_the_best_identity():
    rows = table([(100, 0.20, 0.32, 0.5, 0.0), (200, 0.30, 0.32, 0.5, 0.0), (300, 0.45, 0.31, 0.5, 0.0)])
    assert recommend(rows, RULE).step == 300


def test_every_checkpoint_overfit_falls_back_and_says_so():
    rows = table([(0, 0.1, 0.33, 0.5, 0.0), (100, 0.60, 0.30, 0.50, 0.3), (200, 0.62, 0.20, 0.50, 0.9)])
    rec = recommend(rows, RULE)  # both copy training images more than the base model; 200 also ignores prompts
    assert rec.step == 100
    assert "warning sign" in rec.reason and "retrain" in rec.reason.lower()
    assert rec.signs["verdict"].tolist() == ["overfit", "overfit"]


def test_falls_back_to_dino_when_no_face_was_compared():
    rows = table([(100, np.nan, 0.3, 0.5, 0.0), (200, np.nan, 0.3, 0.5, 0.0)]).assign(dino=[0.4, 0.7])
    cand, metric = judge(rows, RULE)
    rec = recommend(rows, RULE)
    assert metric == "dino" and rec.step == 200 and "DINO" in rec.reason
    assert cand["score"].tolist() == [0.4, 0.7]


def test_checkpoint_without_faces_is_underfit_when_others_have_faces():
    rows = table([(100, np.nan, 0.3, 0.5, 0.0), (200, 0.6, 0.3, 0.5, 0.0)])
    cand, _ = judge(rows, RULE)
    assert cand["signs"].iloc[0] == "underfit: no face found"
    assert recommend(rows, RULE).step == 200


def test_only_base_model_is_an_error():
    with pytest.raises(InputDataError, match="no LoRA checkpoint"):
        recommend(table([(0, 0.1, 0.3, 0.5, 0.0)]), RULE)


def test_read_recommendation_explains_a_missing_file(tmp_path):
    with pytest.raises(InputDataError, match="run 04_checkpoints"):
        read_recommendation(tmp_path)


def test_a_checkpoint_that_breaks_faces_loses_despite_high_identity_on_the_few_it_draws():
    rows = table([(500, 0.60, 0.30, 0.5, 0.0), (1000, 0.70, 0.30, 0.5, 0.0)])
    rows.loc[1, "face_rate"] = 0.5
    rows["identity_score"] = rows["identity"] * rows["face_rate"]
    rec = recommend(rows, RULE)
    assert rec.step == 500
    assert rec.signs.set_index("step").loc[1000, "signs"].startswith("overfit: identity fell to 0.350")
    assert "faces in 50%" in rec.signs.set_index("step").loc[1000, "signs"]
