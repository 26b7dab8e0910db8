"""The recommendation rule: the earliest checkpoint that already has the identity, before overfitting shows.

Identity usually rises then plateaus with training steps, while prompt fidelity and seed diversity
fall and copies of training photos appear once the LoRA overfits; an overfit LoRA also puts the
character's face on other people (leakage) and on the bare class prompt (concept bleed). So: among
checkpoints whose identity is within `identity_tolerance` of the best, take the earliest that shows no
overfitting sign. Leakage and bleed count only where faces were found (NaN is "not measured", never 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import InputDataError
from ..files import read_json

RECOMMENDATION_FILE = "comparison/recommendation.json"
METRIC_LABELS = {"identity": "face identity score (cosine to the held-out faces, 0 where no face)", "dino": "DINO subject similarity"}
SCORE_COLUMNS = {"identity": "identity_score", "dino": "dino"}  # identity_score = identity x share of images with a face


@dataclass(frozen=True)
class Rule:
    """Tolerances of the rule; relative drops are fractions of the best checkpoint's value."""

    identity_tolerance: float  # absolute cosine below the best that still counts as "has the identity"
    fidelity_drop: float  # relative CLIP-T drop from the best checkpoint that counts as overfitting
    diversity_drop: float  # relative seed-diversity drop from the most diverse checkpoint
    memorization_rise: float  # share of outputs copying a training image above the lowest (base model included)
    leakage_max: float | None = None  # share of other people's faces passing as the character (None: not judged)
    bleed_rise: float | None = None  # class-prompt faces' cosine to the character above the base model's (None: not judged)


@dataclass(frozen=True)
class Recommendation:
    checkpoint: str
    name: str
    step: int
    scale: float
    identity_metric: str
    reason: str
    signs: pd.DataFrame  # per candidate: step, scale, score, signs, verdict

    def as_dict(self) -> dict:
        return {"checkpoint": self.checkpoint, "name": self.name, "step": self.step, "lora_scale": self.scale,
                "identity_metric": self.identity_metric, "reason": self.reason}


def identity_metric(candidates: pd.DataFrame) -> str:
    """`identity` (faces) when any checkpoint produced a comparable face, else `dino` (whole-image similarity)."""
    return "identity" if candidates["identity"].notna().any() else "dino"


def _signs(row, best: pd.Series, top: pd.Series, rule: Rule, metric: str) -> list[str]:
    signs = []
    if metric == "identity" and math.isnan(row["identity"]):
        signs.append("underfit: no face found")
    elif row["score"] < best["score"] - rule.identity_tolerance:
        # identity not reached yet (before the best step), or lost again after it (distorted or missing faces)
        kind = "underfit: identity" if row["step"] < best["step"] else "overfit: identity fell to"
        faces = f" (faces in {row['face_rate']:.0%} of images)" if metric == "identity" else ""
        signs.append(f"{kind} {row['score']:.3f} vs best {best['score']:.3f} at step {best['step']}{faces}")
    for col, drop, what in (("clip_t", rule.fidelity_drop, "prompt fidelity"), ("diversity", rule.diversity_drop, "seed diversity")):
        if top[col] > 0 and row[col] < (1 - drop) * top[col]:
            signs.append(f"overfit: {what} down {1 - row[col] / top[col]:.0%}")
    if row["copy_rate"] > top["copy_rate"] + rule.memorization_rise:
        signs.append(f"overfit: {row['copy_rate']:.0%} of outputs copy a training image")
    leak, rise = row.get("leak_rate", math.nan), row.get("bleed_rise", math.nan)  # NaN (no faces) compares False
    if rule.leakage_max is not None and leak > rule.leakage_max:
        signs.append(f"overfit: {leak:.0%} of other people's faces look like the character (leakage)")
    if rule.bleed_rise is not None and rise > rule.bleed_rise:
        signs.append(f"overfit: class-prompt faces {rise:+.3f} closer to the character than the base model's (concept bleed)")
    return signs


def judge(summary: pd.DataFrame, rule: Rule) -> tuple[pd.DataFrame, str]:
    """Every LoRA checkpoint (base model excluded) with its score, signs and verdict; plus the metric used."""
    cand = summary[summary["path"].notna()].sort_values(["step", "scale"]).reset_index(drop=True)
    if cand.empty:
        raise InputDataError("the summary has no LoRA checkpoint rows to judge", fix="check checkpoints_glob")
    metric = identity_metric(cand)
    cand["score"] = cand[SCORE_COLUMNS[metric]].astype(float)
    best = cand.loc[cand["score"].idxmax()]
    # References: the best LoRA checkpoint for fidelity and diversity (the base model, untouched by the
    # LoRA, would flag every checkpoint); the lowest copy rate including the base model, which copies nothing.
    top = pd.Series({"clip_t": cand["clip_t"].max(), "diversity": cand["diversity"].max(), "copy_rate": summary["copy_rate"].min()})
    signs = [_signs(row, best, top, rule, metric) for _, row in cand.iterrows()]
    cand["signs"] = ["; ".join(s) for s in signs]
    cand["verdict"] = [_verdict(s) for s in signs]
    return cand, metric


def _verdict(signs: list[str]) -> str:
    if any(s.startswith("overfit") for s in signs):
        return "overfit"
    return "underfit" if signs else "ok"


def recommend(summary: pd.DataFrame, rule: Rule) -> Recommendation:
    """Apply the rule to the per-checkpoint summary and say why in one paragraph."""
    cand, metric = judge(summary, rule)
    ok = cand[cand["verdict"] == "ok"]  # in step order; at one step the lower LoRA scale comes first
    fallback = ok.empty
    if fallback:  # every checkpoint shows a sign: take the highest identity among the fewest overfit signs
        n_over = cand["signs"].str.count("overfit")
        pick = cand.assign(n=n_over).sort_values(["n", "score", "step"], ascending=[True, False, True]).iloc[0]
    else:
        pick = ok.iloc[0]
    best_row = cand.loc[cand["score"].idxmax()]
    label = METRIC_LABELS[metric]
    reason = (f"{pick['checkpoint']} (step {pick['step']}, LoRA scale {pick['scale']:g}): {label} {pick['score']:.3f}, "
              f"best is {best_row['score']:.3f} at step {best_row['step']}. ")
    if fallback:
        reason += f"Every checkpoint shows a warning sign, so this is the least bad one ({pick['signs']}). Consider retraining. "
    else:
        reason += (f"It is the earliest checkpoint within {rule.identity_tolerance:g} of the best score "
                   "that shows no overfitting sign (prompt fidelity, seed diversity, copies of training images, "
                   "leakage onto other people, concept bleed). ")
    if metric == "identity" and "identity_pass" in pick:
        reason += f"Its face passes the same-person threshold in {pick['identity_pass']:.0%} of the images. "
    later = cand[(cand["step"] > pick["step"]) & (cand["verdict"] == "overfit")]
    if len(later):
        reason += "Later checkpoints overfit: " + "; ".join(f"step {r.step}: {r.signs}" for r in later.itertuples()) + ". "
    unmeasured = [what for col, what in (("leak_rate", "leakage"), ("bleed_rise", "concept bleed"))
                  if col in cand and cand[col].isna().all()]
    if unmeasured:
        reason += f"Not judged: {' and '.join(unmeasured)} (no faces found in those prompts' images, or no base-model row). "
    if metric == "dino":
        reason += ("No face could be compared (none detected in the generated images or the held-out photos), so "
                   "identity falls back to DINO whole-image similarity to the held-out photos, a much weaker signal. ")
    return Recommendation(str(pick["path"]), str(pick["checkpoint"]), int(pick["step"]), float(pick["scale"]),
                          metric, reason.strip(), cand[["checkpoint", "step", "scale", "score", "signs", "verdict"]])


def read_recommendation(workspace: Path) -> dict:
    """The pick 04_checkpoints wrote (`checkpoint` as an absolute path, `step`, `lora_scale`, `reason`), for later stages."""
    path = Path(workspace) / RECOMMENDATION_FILE
    if not path.is_file():
        raise InputDataError(f"no checkpoint recommendation at {path}", fix="run 04_checkpoints first, or name a LoRA file")
    rec = read_json(path)
    return {**rec, "checkpoint": str(Path(workspace) / rec["checkpoint"])}  # an absolute path stays as it is
