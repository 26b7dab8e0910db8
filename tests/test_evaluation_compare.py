"""compare_checkpoints end to end on the tiny SDXL with real LoRA files, plus the input checks that run first."""

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from diffusers.utils import convert_state_dict_to_kohya
from peft import LoraConfig, get_peft_model_state_dict
from PIL import Image
from safetensors.torch import save_file

from pistachio_nb.errors import InputDataError
from pistachio_nb.evaluation import compare_checkpoints, read_recommendation
from pistachio_nb.evaluation.compare import plan_comparison
from pistachio_nb.evaluation.plots import grid_figure, metric_figure
from pistachio_nb.models import load_sdxl_pipeline
from pistachio_nb.evaluation import CheckpointsParams
from pistachio_testkit.demo_data import draw_scene

STEPS = (100, 200, 300)


def write_dataset(ws, n_train=4, n_val=2):
    """metadata.jsonl in the dataset stage's layout, with drawn images (no real faces)."""
    rng, rows = random.Random(0), []
    for i in range(n_train + n_val):
        split = "validation" if i < n_val else "train"
        name = f"validation/v{i}.png" if split == "validation" else f"train/10_ohwx woman/t{i}.png"
        (ws / "dataset" / name).parent.mkdir(parents=True, exist_ok=True)
        draw_scene(rng, (96, 96)).save(ws / "dataset" / name)
        rows.append({"file_name": name, "split": split, "text": f"ohwx woman, picture {i}"})
    (ws / "dataset" / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_loras(ws):
    """Kohya-format LoRA files made with peft on the tiny UNet, named and tagged like 03_training's exports."""
    pipe = load_sdxl_pipeline("tiny:sdxl", "cpu")
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian", target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    state = get_peft_model_state_dict(pipe.unet)
    (ws / "lora").mkdir(parents=True)
    for step in STEPS:
        g = torch.Generator().manual_seed(step)  # larger steps drift further from zero, like training
        kohya = convert_state_dict_to_kohya({f"unet.{k}": v + step / 100 * 0.3 * torch.randn(v.shape, generator=g) for k, v in state.items()})
        save_file({k: v.contiguous() for k, v in kohya.items()}, ws / "lora" / f"char-step-{step:08d}.safetensors", metadata={"ss_steps": str(step)})
    (ws / "lora" / "char.safetensors").write_bytes((ws / "lora" / f"char-step-{STEPS[-1]:08d}.safetensors").read_bytes())
    pd.DataFrame({"step": STEPS, "val_loss": [0.30, 0.25, 0.27]}).to_csv(ws / "lora" / "validation.csv", index=False)


def params(ws, **changes) -> CheckpointsParams:
    values = dict(
        workspace=ws, trigger="ohwx", class_word="woman", base_model="tiny:sdxl", checkpoints_glob="lora/*-step-*.safetensors",
        include_base=True, holdout_prompts=1, context_prompts=["{character} in a red dress"], seeds=[1, 2], lora_scales=[1.0],
        width=64, height=64, steps=2, guidance_scale=5.0, negative_prompt="", face_embedder="sface", clip_model="tiny:clip",
        dino_model="tiny:dinov2", copy_phash_distance=6, copy_similarity=0.999, identity_tolerance=0.03, fidelity_drop=0.1,
        diversity_drop=0.3, memorization_rise=0.1, validation_loss_csv="lora/validation.csv",
        comfy_url="", comfy_models_dir="", comfy_checkpoint="",  # no publishing in these tests
        leakage_prompts=["{character} and a friend at a cafe"], bleed_prompts=["photo of a {class_word}"], leakage_max=0.2,
        bleed_rise=0.15, grid_backend="local", grid_workflow="",
    )  # fmt: skip
    return CheckpointsParams(**{**values, **changes})


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws = tmp_path_factory.mktemp("ws")
    write_dataset(ws)
    write_loras(ws)
    return ws


@pytest.fixture(scope="module")
def result(workspace):
    return compare_checkpoints(params(workspace))


def test_summary_has_every_checkpoint_with_metrics_and_validation_loss(result):
    s = result.summary
    assert s["step"].tolist() == [0, *STEPS] and s["checkpoint"].tolist()[0] == "base"
    assert s["images"].tolist() == [8, 8, 8, 8]  # (2 character + 1 leakage + 1 bleed prompts) x 2 seeds
    assert s.loc[s["step"] > 0, "val_loss"].tolist() == [0.30, 0.25, 0.27]
    for column in ("clip_t", "clip_i", "dino", "diversity", "train_similarity"):
        assert s[column].notna().all(), column
    assert (s["face_rate"] == 0).all() and s["identity"].isna().all()  # drawings and noise: no faces


def test_leakage_and_bleed_prompts_are_scored_apart_from_the_character_means(result):
    images, summary = result.scores.images, result.summary
    assert set(images["kind"]) == {"holdout", "context", "leakage", "bleed"}
    assert images.loc[images["kind"] == "bleed", "prompt"].eq("photo of a woman").all()  # no trigger in the bleed prompt
    character = images[images["kind"].isin(["holdout", "context"])]
    means = character.groupby("checkpoint", sort=False)["clip_t"].mean()
    assert np.allclose(summary.set_index("checkpoint").loc[means.index, "clip_t"], means)  # extra prompts left out
    assert (summary["images"] == images.groupby("checkpoint", sort=False).size().to_numpy()).all()
    assert summary["leak_rate"].isna().all() and summary["bleed"].isna().all()  # noise has no faces: NaN, not 0
    assert result.leakage_note.count("no faces found") == 2
    check = result.scores.identity_check
    assert check.threshold == 0.363 and check.separated and check.faces_found == check.photos


def test_lora_changes_the_images_and_seeds_differ(result):
    grid = result.scores.images.set_index(["step", "prompt_id", "seed"])["file"]
    pixels = {k: np.asarray(Image.open(f), dtype=float) for k, f in grid.items()}
    assert np.abs(pixels[(0, "h0", 1)] - pixels[(300, "h0", 1)]).mean() > 1
    assert np.abs(pixels[(100, "h0", 1)] - pixels[(300, "h0", 1)]).mean() > 1
    assert np.abs(pixels[(100, "h0", 1)] - pixels[(100, "h0", 2)]).mean() > 1


def test_recommendation_file_names_a_kohya_checkpoint_and_why(result, workspace):
    rec = read_recommendation(workspace)
    assert rec["checkpoint"] in {str(workspace / "lora" / f"char-step-{s:08d}.safetensors") for s in STEPS}
    assert rec["step"] == int(rec["checkpoint"][-20:-12]) and rec["identity_metric"] == "dino"
    assert "DINO" in rec["reason"] and rec == result.recommendation.as_dict()
    stored = json.loads((workspace / "comparison" / "recommendation.json").read_text())
    assert stored["checkpoint"].startswith("lora/")  # relative: the workspace can move
    for name in ("grid.csv", "images.csv", "summary.csv", "recommendation.json"):
        assert (workspace / "comparison" / f"{name}.params.json").is_file(), name
    assert "Face identity cannot be measured" in result.scores.face_note


def test_rerun_reuses_every_cached_image(result, workspace):
    plan = plan_comparison(params(workspace))
    before = {f: f.stat().st_mtime_ns for f in plan.grid["file"]}
    from pistachio_nb.evaluation.generate_grid import generate_grid

    again = generate_grid(plan.grid, plan.settings)
    assert again["cached"].all() and {f: f.stat().st_mtime_ns for f in plan.grid["file"]} == before
    more = plan_comparison(params(workspace, seeds=[1, 2, 3]))
    assert more.grid["file"].isin(plan.grid["file"]).sum() == len(plan.grid)  # same images keep their cache file


def test_figures(result):
    grid = grid_figure(result.scores.images, seed=1)
    assert len([ax for ax in grid.axes if ax.images]) == 4 * 4  # 4 checkpoints x (2 character + leakage + bleed) prompts
    metrics = metric_figure(result.summary, result.recommendation.step)
    assert sum(ax.get_visible() for ax in metrics.axes) >= 7


def test_input_errors_name_the_file_or_setting(workspace, tmp_path):
    with pytest.raises(InputDataError, match="metadata.jsonl"):
        plan_comparison(params(tmp_path))
    with pytest.raises(InputDataError, match="checkpoints_glob"):
        plan_comparison(params(workspace, checkpoints_glob="nothing/*.safetensors"))
    with pytest.raises(InputDataError, match=r"several files for step\(s\) \[300\]"):
        plan_comparison(params(workspace, checkpoints_glob="lora/*.safetensors"))
    with pytest.raises(InputDataError, match="validation_loss_csv"):
        plan_comparison(params(workspace, validation_loss_csv="lora/missing.csv"))


def test_prompts_drop_the_trigger_for_clip_and_fill_the_character():
    from pistachio_nb.evaluation.inputs import build_prompts

    dataset = pd.DataFrame({"split": ["validation", "validation", "train"], "text": ["ohwx, a woman, smiling", "", "ohwx x"]})
    prompts = build_prompts(dataset, 5, ["{character} at the beach"], "ohwx", "woman")
    assert prompts["prompt"].tolist() == ["ohwx, a woman, smiling", "ohwx woman at the beach"]
    assert prompts["clip_text"].tolist() == ["a woman, smiling", "woman at the beach"]
    assert prompts["kind"].tolist() == ["holdout", "context"]


def check_demo_outputs(ws, rendered: str) -> None:
    """The 04_checkpoints check for tests/test_notebooks.py CHECKS: every checkpoint scored, a kohya pick, honest faces note."""
    out = ws / "comparison"
    summary = pd.read_csv(out / "summary.csv")
    lora_rows = summary[summary["step"] > 0]
    assert summary["step"].iloc[0] == 0 and len(lora_rows) >= 2 and lora_rows["val_loss"].notna().all()
    rec = read_recommendation(ws)
    assert rec["step"] in set(lora_rows["step"]) and rec["reason"]
    assert rec["checkpoint"].startswith(str(ws / "lora")) and Path(rec["checkpoint"]).is_file()
    assert len(list((out / "images").glob("*.png"))) == summary["images"].sum()
    assert "Face identity cannot be measured" in rendered  # the tiny model draws noise: said, not hidden
    assert "The threshold 0.363 separates them completely" in rendered  # checked on the real photos
    assert "Leakage: no faces found" in rendered and {"leak_rate", "bleed_rise"} <= set(summary.columns)
    assert rendered.count('"image/png"') >= 3 and "Traceback" not in rendered  # grid + two metric figures


def test_lora_scale_changes_the_image_and_generation_is_reproducible(result, tmp_path):
    from pistachio_nb.evaluation.generate_grid import generate_grid, plan_grid

    plan = result.plan
    last = plan.checkpoints[-1]
    grid = generate_grid(plan_grid([last], plan.prompts.iloc[:1], [1], [0.5, 1.0], plan.settings, tmp_path), plan.settings)
    half, full = (np.asarray(Image.open(f), dtype=float) for f in grid["file"])
    before = result.scores.images.set_index(["step", "prompt_id", "seed"]).loc[(last.step, "h0", 1), "file"]
    assert np.abs(half - full).mean() > 1
    assert np.array_equal(full, np.asarray(Image.open(before), dtype=float))  # same seed + settings, same pixels


def test_a_lora_for_another_model_fails_naming_the_file(result, tmp_path):
    from pistachio_nb.errors import ModelLoadError
    from pistachio_nb.evaluation.generate_grid import generate_grid, plan_grid
    from pistachio_nb.evaluation.inputs import Checkpoint

    bad = tmp_path / "other-step-5.safetensors"
    save_file({"lora_unet_no_such_block_proj.lora_down.weight": torch.zeros(4, 8), "lora_unet_no_such_block_proj.lora_up.weight": torch.zeros(8, 4)}, bad)
    plan = result.plan
    todo = plan_grid([Checkpoint("other", 5, bad)], plan.prompts.iloc[:1], [1], [1.0], plan.settings, tmp_path)
    with pytest.raises(ModelLoadError, match="other-step-5.safetensors"):
        generate_grid(todo, plan.settings)


def test_metric_figure_draws_raw_and_ema_checkpoints_as_separate_lines():
    summary = pd.DataFrame({"checkpoint": ["base", "c-step-1", "c-ema-step-1", "c-step-2", "c-ema-step-2"],
                            "step": [0, 1, 1, 2, 2], "scale": [0.0, 1.0, 1.0, 1.0, 1.0],
                            "path": [None, "a", "b", "c", "d"], "clip_t": [0.2, 0.3, 0.31, 0.35, 0.33]})
    ax = next(a for a in metric_figure(summary).axes if "CLIP-T" in a.get_title())
    lines = {line.get_label(): list(line.get_ydata()) for line in ax.get_lines() if line.get_label().startswith("scale")}
    assert lines == {"scale 1": [0.3, 0.35], "scale 1 EMA": [0.31, 0.33]}
