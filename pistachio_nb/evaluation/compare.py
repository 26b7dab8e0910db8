"""`compare_checkpoints`: plan the grid, generate it, score every image, summarise per checkpoint, recommend.

The verb is the one composition of these steps; the notebook calls `plan_comparison` (inputs only, no
model) to show what will be compared, then the verb, then looks at the `ComparisonResult`'s tables and figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from ..errors import InputDataError
from ..files import write_csv, write_json, write_sidecar
from ..models import load_clip, load_dinov2, pick_device
from . import embeddings as emb
from .diversity import seed_diversity
from .faces import all_faces, best_face, embed_faces, identity_table, load_face_embedder, reference_identity, same_person_threshold
from .generate_grid import SamplerSettings, generate_grid, plan_grid
from .identity_check import IdentityCheck, check_identity_threshold, pass_share
from .inputs import BASE, Checkpoint, build_prompts, find_checkpoints, read_dataset
from .leakage import CHARACTER_KINDS, bleed_summary, extra_prompts, leak_counts, leak_summary, leakage_note
from .memorization import flag_copies, nearest_training, phashes
from .params import CheckpointsParams
from .plots import grid_figure, metric_figure
from .recommend import Recommendation, Rule, recommend

METRICS = ["face_rate", "identity", "identity_pass", "identity_score", "clip_t", "clip_i", "dino", "copy_rate",
           "train_similarity", "diversity"]  # over the character prompts only; leakage and bleed have their own columns
LEAK_COLUMNS = ["other_faces", "leaked_faces", "leak_rate", "bleed_faces", "bleed", "bleed_pass", "bleed_rise"]


@dataclass(frozen=True)
class Plan:
    """Everything a comparison needs, checked before any model loads."""

    params: CheckpointsParams
    out: Path
    checkpoints: list[Checkpoint]
    prompts: pd.DataFrame
    dataset: pd.DataFrame
    settings: SamplerSettings
    grid: pd.DataFrame  # one row per image to generate
    loss_file: Path | None

    @property
    def images_per_checkpoint(self) -> pd.DataFrame:
        """How many images each checkpoint (and LoRA scale) will get: prompts x seeds."""
        counts = self.grid.groupby(["checkpoint", "step", "scale"], sort=False).size()
        return counts.rename("images").reset_index()


@dataclass(frozen=True)
class Scores:
    """Per-image metrics, plus how many held-out photos had a detectable face (identity needs them)."""

    images: pd.DataFrame
    reference_faces: int
    references: int
    threshold: float  # the face model's same-person cosine
    identity_check: IdentityCheck  # that threshold checked on real photos of two people

    @property
    def face_note(self) -> str:
        """One honest sentence on whether identity could be measured from faces."""
        found, total = int(self.images["face_found"].sum()), len(self.images)
        note = f"Faces found in {self.reference_faces} of {self.references} held-out photos and {found} of {total} generated images."
        if not self.reference_faces or not found:
            note += " Face identity cannot be measured here; the recommendation uses DINO similarity instead."
        return note


@dataclass(frozen=True)
class ComparisonResult:
    """What `compare_checkpoints` did, with the tables and figures the notebook shows."""

    plan: Plan
    scores: Scores
    summary: pd.DataFrame  # one row per checkpoint and LoRA scale (comparison/summary.csv)
    recommendation: Recommendation
    grid: pd.DataFrame  # one row per generated image, `cached` = reused from an earlier run (comparison/grid.csv)

    @property
    def leakage(self) -> pd.DataFrame:
        """Per checkpoint: leakage onto other people and concept bleed of the class prompt (NaN: no faces found)."""
        return self.summary[["checkpoint", "step", "scale", *LEAK_COLUMNS]]

    @property
    def leakage_note(self) -> str:
        """Whether leakage and bleed could be measured, in one or two sentences."""
        p = self.plan.params
        return leakage_note(self.summary, len(p.leakage_prompts), len(p.bleed_prompts))

    @property
    def cached(self) -> pd.DataFrame:
        """How many grid images were generated now and how many reused from the cache, as a small table."""
        reused = int(self.grid["cached"].sum())
        return pd.DataFrame({"images": [len(self.grid) - reused, reused]}, index=["generated now", "reused from the cache"])

    @property
    def images(self) -> pd.DataFrame:
        """Per-image metrics (comparison/images.csv)."""
        return self.scores.images

    def grid_figure(self, seed: int | None = None, scale: float | None = None):
        """Rows = checkpoints, columns = prompts, for one seed (default: the first) and LoRA scale."""
        return grid_figure(self.grid, seed=self.plan.params.seeds[0] if seed is None else seed, scale=scale)

    def metric_figure(self, mark_recommended: bool = False):
        """Each metric against training step; with `mark_recommended`, a dashed line at the picked step."""
        return metric_figure(self.summary, self.recommendation.step if mark_recommended else None)


def plan_comparison(p: CheckpointsParams) -> Plan:
    """Find checkpoints, reference and training photos and prompts; lay out the grid. No model loads here."""
    ws, out = p.ws, p.ws.comparison
    dataset = read_dataset(ws.root)
    checkpoints = ([BASE] if p.include_base else []) + find_checkpoints(ws.root, p.checkpoints_glob)
    prompts = build_prompts(dataset, p.holdout_prompts, p.context_prompts, p.trigger, p.class_word)
    extra = extra_prompts(len(prompts), p.leakage_prompts, p.bleed_prompts, p.trigger, p.class_word)
    prompts = pd.concat([prompts, extra], ignore_index=True) if len(extra) else prompts
    settings = SamplerSettings(p.base_model, p.width, p.height, p.steps, p.guidance_scale, p.negative_prompt)
    grid = plan_grid(checkpoints, prompts, p.seeds, p.lora_scales, settings, out / "images")
    return Plan(p, out, checkpoints, prompts, dataset, settings, grid, _loss_file(ws.root, p.validation_loss_csv))


def _loss_file(root: Path, name: str) -> Path | None:
    if not name:
        return None
    if not (root / name).is_file():
        raise InputDataError(f"validation_loss_csv {root / name} does not exist", fix="run 03_training first, or set it to ''")
    return root / name


def generate_images(plan: Plan) -> pd.DataFrame:
    """Generate the missing grid images and write `comparison/grid.csv` (with its params sidecar)."""
    grid = generate_grid(plan.grid, plan.settings)
    write_csv(plan.out / "grid.csv", grid)
    write_sidecar(plan.out / "grid.csv", plan.params)
    return grid


def _open(paths) -> list[Image.Image]:
    images = []
    for path in paths:
        with Image.open(path) as im:
            images.append(im.convert("RGB"))
    return images


def _over_images(paths: list, *fns, desc: str, chunk: int = 64) -> list:
    """Apply each fn to the images at `paths`, opened `chunk` at a time so a 1024 px grid of hundreds
    of images never sits in memory at once; returns each fn's results concatenated."""
    parts: list[list] = [[] for _ in fns]
    for i in tqdm(range(0, len(paths), chunk), desc=desc):
        images = _open(paths[i : i + chunk])
        for part, fn in zip(parts, fns):
            part.append(fn(images))
    return [np.concatenate(part) if isinstance(part[0], np.ndarray) else sum(part, []) for part in parts]


def score_images(plan: Plan, grid: pd.DataFrame) -> Scores:
    """Per image: face identity (and whether it passes), faces of other people that pass as the character,
    CLIP-T, CLIP-I, DINO, nearest training image, copy flag, seed diversity."""
    p, device = plan.params, pick_device()
    faces, clip, dino = load_face_embedder(p.face_embedder, device), load_clip(p.clip_model, device), load_dinov2(p.dino_model, device)
    threshold = same_person_threshold(faces)
    face_fn = lambda ims: embed_faces(faces, ims)  # noqa: E731
    all_faces_fn = lambda ims: all_faces(faces, ims)  # noqa: E731
    clip_fn, dino_fn = (lambda ims: emb.clip_image_embeddings(clip, ims)), (lambda ims: emb.dino_embeddings(dino, ims))
    refs = plan.dataset[plan.dataset["split"] == "validation"]
    train = plan.dataset[plan.dataset["split"] == "train"]
    ref_faces, ref_clip, ref_dino = _over_images(list(refs["path"]), face_fn, clip_fn, dino_fn, desc="references")
    train_hash, train_dino = _over_images(list(train["path"]), phashes, dino_fn, desc="training images")
    gen_all, gen_clip, gen_dino, gen_hash = _over_images(list(grid["file"]), all_faces_fn, clip_fn, dino_fn, phashes, desc="generated")
    gen_faces = [best_face(found) for found in gen_all]  # the subject; the rest are other people (leakage)

    texts = plan.prompts.set_index("prompt_id").loc[grid["prompt_id"], "clip_text"].tolist()
    nearest = nearest_training(gen_hash, train_hash, gen_dino, train_dino, train["file_name"].tolist())
    reference = reference_identity(ref_faces)
    identity = identity_table(gen_faces, reference)
    identity["identity_pass"] = pass_share(identity["identity"], threshold)
    kinds = plan.prompts.set_index("prompt_id").loc[grid["prompt_id"], "kind"].to_numpy()
    table = pd.concat([grid.drop(columns=["cached"], errors="ignore").reset_index(drop=True).assign(kind=kinds), identity,
                       leak_counts(gen_all, reference, threshold), nearest], axis=1)  # fmt: skip
    table["clip_t"] = emb.paired_similarity(gen_clip, emb.clip_text_embeddings(clip, texts))
    table["clip_i"], table["dino"] = emb.mean_similarity(gen_clip, ref_clip), emb.mean_similarity(gen_dino, ref_dino)
    table["copy"] = flag_copies(nearest, p.copy_phash_distance, p.copy_similarity)
    groups = ["checkpoint", "scale", "prompt_id"]
    table = table.merge(seed_diversity(table, gen_dino, groups), on=groups, how="left")
    write_csv(plan.out / "images.csv", table)
    write_sidecar(plan.out / "images.csv", p)
    return Scores(table, sum(f is not None for f in ref_faces), len(refs), threshold, check_identity_threshold(faces, threshold))


def read_validation_loss(path: Path) -> pd.DataFrame:
    """`step, val_loss` from training's validation CSV (columns `step` and one containing `val`)."""
    table = pd.read_csv(path)
    column = next((c for c in table.columns if "val" in c.lower() and "loss" in c.lower()), None)
    if "step" not in table.columns or column is None:
        raise InputDataError(f"{path} has no `step` and validation-loss columns (found {list(table.columns)})",
                             fix="point validation_loss_csv at the validation CSV 03_training wrote, or set it to ''")
    return table.groupby("step", as_index=False)[column].mean().rename(columns={column: "val_loss"})


def summarize(plan: Plan, images: pd.DataFrame) -> pd.DataFrame:
    """One row per checkpoint and LoRA scale: mean metrics and the share of faces passing as the character (over
    the character prompts), face and copy rates, leakage and bleed, validation loss joined by step."""
    keys = ["checkpoint", "step", "scale"]
    agg = images.assign(face_rate=images["face_found"].astype(float), copy_rate=images["copy"].astype(float),
                        identity_pass=images["identity_pass"].astype(float),
                        identity_score=images["identity"].fillna(0.0))  # a missing face scores 0, not "unknown"
    character = agg[agg["kind"].isin(CHARACTER_KINDS)]
    summary = character.groupby(keys, as_index=False, sort=False)[METRICS].mean()
    counts = agg.groupby(keys, as_index=False, sort=False).size().rename(columns={"size": "images"})  # every prompt
    for part in (counts, leak_summary(agg, keys), bleed_summary(agg, keys)):
        summary = summary.merge(part, on=keys, how="left")
    paths = {c.name: c.path for c in plan.checkpoints}
    summary.insert(3, "path", summary["checkpoint"].map(paths))
    summary["val_loss"] = np.nan
    if plan.loss_file:
        loss = read_validation_loss(plan.loss_file)
        summary["val_loss"] = summary["step"].map(loss.set_index("step")["val_loss"])
    summary = summary.sort_values(["step", "scale"]).reset_index(drop=True)
    write_csv(plan.out / "summary.csv", summary)
    write_sidecar(plan.out / "summary.csv", plan.params)
    return summary


def rule_of(p: CheckpointsParams) -> Rule:
    return Rule(p.identity_tolerance, p.fidelity_drop, p.diversity_drop, p.memorization_rise, p.leakage_max, p.bleed_rise)


def recommend_checkpoint(plan: Plan, summary: pd.DataFrame) -> Recommendation:
    """Apply the rule and write `comparison/recommendation.json` (+ sidecar) for the later stages."""
    rec = recommend(summary, rule_of(plan.params))
    dest, root = plan.out / "recommendation.json", plan.params.ws.root
    chosen = Path(rec.checkpoint)  # stored relative to the workspace, so a workspace copied off the pod still works
    write_json(dest, {**rec.as_dict(), "checkpoint": str(chosen.relative_to(root) if chosen.is_relative_to(root) else chosen)})
    write_sidecar(dest, plan.params)
    write_csv(plan.out / "verdicts.csv", rec.signs)
    return rec


def compare_checkpoints(p: CheckpointsParams) -> ComparisonResult:
    """The whole stage: grid, per-image scores, per-checkpoint summary, recommendation (all under comparison/)."""
    plan = plan_comparison(p)
    grid = generate_images(plan)
    scores = score_images(plan, grid)
    summary = summarize(plan, scores.images)
    return ComparisonResult(plan, scores, summary, recommend_checkpoint(plan, summary), grid)
