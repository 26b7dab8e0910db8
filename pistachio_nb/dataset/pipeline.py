"""`prepare_dataset`: source folder -> validated, deduplicated, split, bucketed dataset in the workspace."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import InputDataError, ParamsError
from ..files import read_json, write_csv, write_json, write_jsonl, write_sidecar
from ..paths import resolve
from .buckets import face_fit, fit_bucket, sdxl_buckets
from .decode import Limits, parse_colour
from .dedup import mark_duplicates, rank_key
from .identity import FACES, IdentityResult, anchor_files, check_identity, face_model, faces_file
from .ingest import ProbeConfig, list_sources, probe_all, user_caption
from .layout import METADATA, RenderJob, kohya_folder, output_name, sync_layout
from .params import DatasetParams
from .quality import quality_flags
from .split import validation_clusters

MANIFEST = "manifest.csv"
PROBE_CACHE = ".probe-cache.json"
COLUMNS = [
    "path", "status", "reason", "size", "mtime_ns", "hash", "format", "mode", "width", "height", "aspect",
    "blur", "phash", "group", "cluster", "cluster_size", "duplicate_of", "faces", "identity", "pose", "framing", "kept",
    "split", "bucket", "flags", "file_name",
]


@dataclass
class DatasetResult:
    """What a run produced: the dataset folder, the manifest table, the metadata rows and what was (re)done."""

    root: Path
    source: Path
    manifest: pd.DataFrame
    metadata: list[dict]
    counts: dict[str, int]
    seconds: float
    identity: IdentityResult  # who the character is, and the face model's verdicts


def prepare_dataset(p: DatasetParams) -> DatasetResult:
    """Ingest `p.source_dir`, dedup, flag, split and write the kohya + metadata.jsonl dataset; incremental."""
    t0 = time.perf_counter()
    source, root = source_folder(p), p.ws.dataset
    cfg = ProbeConfig(str(source), p.min_side, p.max_pixels, p.dedup_algorithm, parse_colour(p.alpha_background))
    rels = [f.relative_to(source).as_posix() for f in list_sources(source)]
    if not rels:
        raise InputDataError(f"source_dir {source} holds no files", fix="put the character's images (jpg, png, webp) there")
    anchor_files(p.face_anchors, source)  # a missing anchor photo or face model is named before any image is read
    faces = face_model(p.face_embedder)
    cached = read_json(root / PROBE_CACHE) if (root / PROBE_CACHE).exists() else {}
    reusable = {r["path"]: r for r in cached.get("rows", [])} if cached.get("fingerprint") == cfg.fingerprint() else {}
    probed_rows, probed = probe_all(cfg, rels, reusable, p.workers)
    write_json(root / PROBE_CACHE, {"fingerprint": cfg.fingerprint(), "rows": probed_rows})
    rows = [dict(r) for r in probed_rows]
    mark_duplicates(rows, p.dedup_threshold)
    identity = check_identity(rows, source, root, faces, p.face_anchors, p.face_embedder, p.workers)
    entries, jobs = plan_layout(rows, p, cfg)
    counts = sync_layout(root, entries, jobs, p.workers)
    write_jsonl(root / METADATA, entries)
    write_sidecar(root / METADATA, p)
    write_json(root / FACES, faces_file(entries, rows))
    manifest = manifest_frame(rows)
    write_csv(root / MANIFEST, manifest)
    write_sidecar(root / MANIFEST, p)
    counts = {"files": len(rels), "probed": probed, "reused": len(rels) - probed, **counts}
    return DatasetResult(root, source, manifest, entries, counts, round(time.perf_counter() - t0, 2), identity)


def manifest_frame(rows: list[dict]) -> pd.DataFrame:
    """The manifest table in its column order, whole-number columns as nullable integers."""
    frame = pd.DataFrame(rows).reindex(columns=COLUMNS)
    for col in ("size", "mtime_ns", "width", "height", "group", "cluster", "cluster_size", "faces"):
        frame[col] = frame[col].astype("Int64")
    return frame


def source_folder(p: DatasetParams) -> Path:
    """The resolved source folder: it must exist, and never overlap the dataset folder."""
    source, dataset = resolve(p.source_dir), resolve(p.workspace) / "dataset"
    if source.is_relative_to(dataset) or dataset.is_relative_to(source):
        raise ParamsError(
            f"source_dir {source} and the dataset folder {dataset} overlap",
            fix="keep source_dir outside <workspace>/dataset and the workspace outside source_dir",
        )
    if not source.is_dir():
        raise InputDataError(
            f"source_dir {source} is not an existing folder",
            fix="set source_dir to the folder holding the character's images",
        )
    return source


def plan_layout(rows: list[dict], p: DatasetParams, cfg: ProbeConfig) -> tuple[list[dict], dict[str, RenderJob]]:
    """Bucket, quality-flag and split every kept image; returns metadata rows and how to render each."""
    buckets, folder = sdxl_buckets(p.base_resolution), kohya_folder(p.repeats, p.trigger, p.class_word)
    kept = [r for r in rows if r["kept"]]
    group_key = {r["group"]: r["hash"] for r in sorted(kept, key=rank_key, reverse=True)}  # the group's best image
    held_out = validation_clusters(group_key.values(), p.validation_ratio, p.split_seed)
    entries, jobs = [], {}
    for r in rows:
        if r.get("group") in group_key:  # a whole chained group on one side, so no near copy of a validation image trains
            r["split"] = "validation" if group_key[r["group"]] in held_out else "train"
        r["aspect"] = round(r["width"] / r["height"], 3) if r.get("width") else None
        if not r["kept"]:
            continue
        fit = fit_bucket(r["width"], r["height"], buckets)
        if p.crop == "face" and r.get("face_box"):
            fit = face_fit(fit, r["face_box"])
        name = f"{'validation' if r['split'] == 'validation' else 'train/' + folder}/{output_name(r['path'], r['hash'])}"
        r.update(bucket=f"{fit.bucket[0]}x{fit.bucket[1]}", file_name=name,
                 flags=";".join(quality_flags(r["blur"], p.blur_threshold, fit.upscale, fit.crop_share)
                                + (["near_chain"] if r.get("chained") else []) + (["outside_source"] if r.get("outside") else [])
                                + r.get("face_flags", [])))
        entries.append({
            "file_name": name, "split": r["split"], "width": fit.bucket[0], "height": fit.bucket[1],
            "original_width": r["width"], "original_height": r["height"], "crop_left": fit.left, "crop_top": fit.top,
            "source": r["path"], "hash": r["hash"], "text": "",
        })
        if caption := user_caption(cfg.source_dir, r["path"]):  # the user's own caption starts 02 off
            entries[-1].update(text=caption, caption_source="user")
        jobs[name] = RenderJob(str(Path(cfg.source_dir) / r["path"]), str(p.ws.dataset / name), fit,
                               Limits(cfg.min_side, cfg.max_pixels), cfg.background)
    return entries, jobs
