"""Pictures of a comparison: the X/Y grid (checkpoints x prompts) and each metric against training step."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from ..display import image_grid
from .inputs import EMA_NAME

PANELS = {  # column -> (title, how to read it)
    "identity": ("face identity (cosine)", "higher = more like the held-out faces"),
    "identity_pass": ("faces passing as the character (share)", "of all images: what a viewer would recognise"),
    "identity_score": ("identity score (0 where no face)", "what the recommendation ranks"),
    "face_rate": ("faces found (share)", "a drop means the LoRA breaks faces"),
    "clip_t": ("CLIP-T (prompt fidelity)", "falls when the LoRA ignores the prompt"),
    "clip_i": ("CLIP-I (to references)", "higher = closer to the held-out photos"),
    "dino": ("DINO (to references)", "higher = closer to the held-out photos"),
    "train_similarity": ("nearest training image (DINO)", "rising toward 1 = copying"),
    "copy_rate": ("copies of training images (share)", "should stay near 0"),
    "diversity": ("seed diversity (1 - cosine)", "falls when seeds collapse"),
    "leak_rate": ("leakage: other faces passing as the character", "should stay near 0"),
    "bleed": ("concept bleed: class-prompt faces vs character", "rising above the base model = the class was rewritten"),
    "val_loss": ("validation loss", "noisy; a weak guide on its own"),
}


def grid_figure(grid: pd.DataFrame, seed: int, scale: float | None = None):
    """Rows = checkpoints (base first), columns = prompts, for one seed and LoRA scale (base always shown)."""
    scale = grid.loc[grid["scale"] > 0, "scale"].iloc[0] if scale is None and (grid["scale"] > 0).any() else scale
    pick = grid[(grid["seed"] == seed) & ((grid["scale"] == scale) | (grid["path"].isna()))]
    prompts = pick.drop_duplicates("prompt_id")  # columns in prompt order, labelled with the prompt's start
    table = pick.pivot_table(index=["step", "checkpoint"], columns="prompt_id", values="file", aggfunc="first")
    rows = [[table.loc[idx, c] for c in prompts["prompt_id"]] for idx in table.index]
    labels = [f"{i}: {text[:24]}{'…' if len(text) > 24 else ''}" for i, text in zip(prompts["prompt_id"], prompts["prompt"])]
    title = f"seed {seed}, LoRA scale {scale:g}" if scale is not None else f"seed {seed}"
    return image_grid(rows, [name for _, name in table.index], labels, title=title)


def metric_figure(summary: pd.DataFrame, recommended_step: int | None = None):
    """One small panel per metric against training step, one line per LoRA scale (and per raw / EMA series, so the
    two kinds of checkpoint at one step are two lines, not a zigzag); the pick as a dashed line."""
    panels = [c for c in PANELS if c in summary and summary[c].notna().any()]
    cols = 3
    fig, axes = plt.subplots((len(panels) + cols - 1) // cols, cols, figsize=(4 * cols, 2.8 * ((len(panels) + cols - 1) // cols)), squeeze=False)
    for ax, column in zip(axes.flat, panels):
        trained = summary[summary["path"].notna()]
        ema = trained["checkpoint"].map(lambda name: EMA_NAME.search(name) is not None)
        for (is_ema, scale), part in trained.groupby([ema, "scale"]):
            ax.plot(part["step"], part[column], marker="s" if is_ema else "o", ls="--" if is_ema else "-",
                    label=f"scale {scale:g}{' EMA' if is_ema else ''}")
        base = summary[summary["path"].isna()]
        if len(base) and base[column].notna().any():
            ax.axhline(base[column].iloc[0], color="grey", lw=0.8, label="base model")
        if recommended_step is not None:
            ax.axvline(recommended_step, color="black", ls="--", lw=0.8)
        title, hint = PANELS[column]
        ax.set_title(f"{title}\n{hint}", fontsize=8)
        ax.set_xlabel("training step", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig
