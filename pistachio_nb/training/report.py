"""What the training notebook shows: loss/LR/validation curves and the sample grid per checkpoint."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from ..display import image_grid
from ..files import read_jsonl
from .loop import MANIFEST


def loss_figure(lora_dir: str | Path, smoothing: float = 0.8):
    """Training loss (raw and smoothed), validation loss and learning rate against the step."""
    lora_dir = Path(lora_dir)
    train = pd.read_csv(lora_dir / "metrics.csv")
    val = pd.read_csv(lora_dir / "validation.csv")
    fig, (ax_loss, ax_lr) = plt.subplots(1, 2, figsize=(11, 3.5))
    ax_loss.plot(train["step"], train["loss"], alpha=0.3, label="train loss")
    ax_loss.plot(train["step"], train["loss"].ewm(alpha=1 - smoothing).mean(), label="train loss (smoothed)")
    ax_loss.plot(val["step"], val["val_loss"], "o-", label="validation loss (fixed noise)")
    ax_loss.set(xlabel="optimizer step", ylabel="loss", title="loss")
    ax_loss.legend(fontsize=8)
    ax_lr.plot(train["step"], train["lr_unet"], label="UNet")
    if train["lr_text"].any():
        ax_lr.plot(train["step"], train["lr_text"], label="text encoders")
    ax_lr.set(xlabel="optimizer step", ylabel="learning rate", title="learning rate")
    ax_lr.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def sample_grid(lora_dir: str | Path):
    """Rows = checkpoints, columns = (prompt, seed): the same images asked for at every checkpoint."""
    rows = read_jsonl(Path(lora_dir) / MANIFEST)
    if not rows:
        return image_grid([[None]], title="no checkpoints yet")
    if not rows[0]["samples"]:
        return image_grid([[None]], title="no sample prompts: sample_prompts is empty, so no samples were made")
    cols = [textwrap.fill(f"{s['prompt']} / seed {s['seed']}", 28) for s in rows[0]["samples"]]  # whole prompt
    images = [[s["file"] for s in r["samples"]] for r in rows]
    return image_grid(images, row_labels=[f"step {r['step']}" for r in rows], col_labels=cols)


def labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """A table ready for `show`: a summary's label index (its field names) becomes a `field` column; 0..n is dropped."""
    return frame if isinstance(frame.index, pd.RangeIndex) else frame.rename_axis("field").reset_index()


def lora_info(path: str | Path) -> pd.DataFrame:
    """What a kohya LoRA file holds: adapter counts per part, rank, alpha and the main `ss_*` metadata."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys, meta = list(f.keys()), f.metadata() or {}
        ranks = {f.get_slice(k).get_shape()[0] for k in keys if k.endswith("lora_down.weight")}
    parts = {prefix: sum(k.startswith(prefix) and k.endswith("lora_down.weight") for k in keys)
             for prefix in ("lora_unet_", "lora_te1_", "lora_te2_")}  # fmt: skip
    rows = {f"modules {p}*": n for p, n in parts.items()} | {"rank(s)": sorted(ranks)}
    rows |= {k: meta[k] for k in ("ss_network_alpha", "ss_steps", "ss_trigger", "ss_sd_model_name", "ss_resolution") if k in meta}
    return pd.DataFrame({"value": [str(v) for v in rows.values()]}, index=list(rows))
