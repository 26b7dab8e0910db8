"""What the 01_dataset notebook shows: summary tables, duplicate-cluster grids, quality plots, the split."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from PIL import Image

from ..display import image_grid
from .buckets import sdxl_buckets
from .decode import small_copy
from .identity import FRAMINGS, POSES
from .pipeline import DatasetResult

THUMB = 192


def thumbnail(path: Path, side: int = THUMB) -> Image.Image:
    """A small upright RGB copy for display."""
    return small_copy(path, side)


def run_counts(result: DatasetResult) -> dict[str, int | float]:
    """What this run did: files seen, probed vs reused from the last run, images written/moved/kept/removed."""
    return result.counts | {"seconds": round(result.seconds, 3)}


def status_summary(result: DatasetResult) -> pd.DataFrame:
    """Files per status (ok, duplicate, rejected, skipped)."""
    m = result.manifest
    return m.groupby("status").agg(files=("path", "size"), bytes=("size", "sum")).reset_index()


def problems(result: DatasetResult) -> pd.DataFrame:
    """Every rejected or skipped file with the reason, so the user can fix or ignore it."""
    m = result.manifest
    return m.loc[m["status"].isin(["rejected", "skipped"]), ["path", "status", "reason"]].reset_index(drop=True)


def duplicate_table(result: DatasetResult) -> pd.DataFrame:
    """Members of every group with more than one image: which were kept, how far each copy is from the image
    it duplicates, and the flags (near_chain: kept, but chained to another kept image)."""
    m = result.manifest
    cols = ["group", "cluster", "path", "status", "width", "height", "blur", "split", "flags", "reason"]
    dup = m.loc[m.groupby("group")["path"].transform("size") > 1, cols]
    return dup.sort_values(["group", "cluster", "status"], ascending=[True, True, False]).reset_index(drop=True)


def cluster_grid(result: DatasetResult, max_clusters: int = 6, max_members: int = 6):
    """One row per duplicate cluster (the biggest first): the kept image, then its duplicates."""
    dup = duplicate_table(result)
    sizes = dup.groupby("cluster").size().sort_values(ascending=False, kind="stable")
    rows, labels = [], []
    for c in sizes.index[:max_clusters]:
        members = dup[dup["cluster"] == c].head(max_members)
        rows.append([thumbnail(result.source / p) for p in members["path"]])
        labels.append(f"cluster {c}")
    if not rows:
        return image_grid([[None]], title="no near-duplicates found")
    width = max(len(r) for r in rows)
    return image_grid(rows, labels, ["kept"] + ["duplicate"] * (width - 1), title="near-duplicate clusters")


def face_table(result: DatasetResult) -> pd.DataFrame:
    """Images the face check rejected or flagged, least like the character first, with faces found and why."""
    m = result.manifest
    other = m["reason"].fillna("").str.startswith("another person")
    flagged = m["flags"].fillna("").str.contains("no_face|several_faces")
    cols = ["path", "status", "faces", "identity", "pose", "framing", "flags", "reason"]
    return m.loc[other | flagged, cols].sort_values("identity", na_position="last").reset_index(drop=True)


def face_grid(result: DatasetResult, per_row: int = 6):
    """One row per verdict (another person, several faces, no face): the images, so the eye can confirm them."""
    table = face_table(result)
    groups = {"another person": table["reason"].fillna("").str.startswith("another person"),
              "several faces": table["flags"].fillna("").str.contains("several_faces"),
              "no face": table["flags"].fillna("").str.contains("no_face")}  # fmt: skip
    rows, labels = [], []
    for label, chosen in groups.items():
        if chosen.any():
            rows.append([thumbnail(result.source / path) for path in table.loc[chosen, "path"].head(per_row)])
            labels.append(label)
    return image_grid(rows or [[None]], labels, title="face check" if rows else "every image shows one face of the character")


def coverage_table(result: DatasetResult) -> pd.DataFrame:
    """Kept images by head pose (rows) and framing (columns): the angles and distances the dataset has, and lacks."""
    kept = result.manifest[result.manifest["kept"].astype(bool) & (result.manifest["pose"].fillna("") != "")]
    table = pd.crosstab(pd.Categorical(kept["pose"], POSES), pd.Categorical(kept["framing"], FRAMINGS), dropna=False)
    table.index.name, table.columns.name = "pose", "framing"
    return table


def coverage_plot(result: DatasetResult):
    """The coverage table as grouped bars: an empty bar is a kind of photo the LoRA will have to guess."""
    table = coverage_table(result)
    fig, ax = plt.subplots(figsize=(6, 2.8))
    table.plot.bar(ax=ax, rot=0, color=["tab:blue", "tab:orange", "tab:green"])
    ax.set(title="kept images by head pose and framing", xlabel="", ylabel="images")
    ax.legend(title="framing", fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def quality_table(result: DatasetResult) -> pd.DataFrame:
    """Kept images, blurriest first, with resolution, aspect, bucket and flags."""
    m = result.manifest
    cols = ["path", "width", "height", "aspect", "blur", "bucket", "flags", "split"]
    return m.loc[m["kept"].astype(bool), cols].sort_values("blur").reset_index(drop=True)


def quality_plots(result: DatasetResult, blur_threshold: float, base_resolution: int):
    """Histograms of blur score (threshold marked) and aspect ratio (bucket aspects marked)."""
    kept = result.manifest[result.manifest["kept"].astype(bool)]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.2))
    a.hist(kept["blur"], bins=20, color="tab:blue")
    a.axvline(blur_threshold, color="tab:red", linestyle="--", label=f"blur_threshold {blur_threshold:g}")
    a.set(title="blur score (Laplacian variance)", xlabel="higher is sharper", ylabel="images")
    a.legend()
    b.hist(kept["aspect"], bins=20, color="tab:green")
    for w, h in sdxl_buckets(base_resolution):
        b.axvline(w / h, color="grey", linewidth=0.8)
    b.set(title="aspect ratio (grey: buckets)", xlabel="width / height", xscale="log")
    ticks = (0.25, 0.5, 0.75, 1, 1.5, 2, 4)  # plain numbers, not log-axis labels like 4x10^-1
    b.set_xticks(ticks, [f"{t:g}" for t in ticks])
    b.minorticks_off()
    fig.tight_layout()
    plt.close(fig)
    return fig


def as_rows(table: pd.DataFrame) -> pd.DataFrame:
    """A crosstab as plain rows for `show`: its index becomes the first column and no axis name is left over."""
    return table.rename_axis(columns=None).reset_index()


def split_table(result: DatasetResult) -> pd.DataFrame:
    """Images per bucket in train and validation."""
    meta = pd.DataFrame(result.metadata)
    if meta.empty:
        return meta
    meta["bucket"] = meta["width"].astype(str) + "x" + meta["height"].astype(str)
    return pd.crosstab(meta["bucket"], meta["split"], margins=True, margins_name="total")


def dataset_grid(result: DatasetResult, per_split: int = 6):
    """A few written images per split, exactly as training will see them (bucket size, cropped)."""
    rows, labels = [], []
    for split in ("train", "validation"):
        names = [e["file_name"] for e in result.metadata if e["split"] == split][:per_split]
        if names:
            rows.append([result.root / n for n in names])
            labels.append(split)
    return image_grid(rows or [[None]], labels, title="written dataset (bucket-sized)")


def metadata_table(result: DatasetResult, n: int = 8) -> pd.DataFrame:
    """The first `n` rows of metadata.jsonl, file_name first."""
    return pd.DataFrame(result.metadata).head(n)
