"""01_dataset: turn a folder of the character's images into a clean, split, bucketed training dataset.

Public verb: `prepare_dataset(params) -> DatasetResult`. It reads `params.source_dir` (never modifies
or deletes anything there) and writes `<workspace>/dataset/`, the contract later stages rely on:

- `manifest.csv`: one row per source file: path (relative to source_dir), status (ok | duplicate |
  rejected | skipped), reason, size, mtime_ns, hash (sha256 of the bytes), format, mode, width/height
  (upright, after EXIF orientation), aspect, blur (Laplacian variance at a fixed scale), phash,
  group (chained near-duplicates: A~B, B~C; one side of the split), cluster (one kept image and its
  duplicates, each within dedup_threshold of it), cluster_size, duplicate_of, kept, split, bucket ("WxH"),
  flags (";"-joined: blurry, upscaled, heavy_crop, near_chain: kept but chained to another kept image,
  worth a look), file_name (in the dataset, for kept rows).
- `metadata.jsonl`: the single index later stages read (Hugging Face imagefolder convention), one
  object per written image: file_name (relative to the dataset folder), split (train | validation),
  width/height (the bucket), original_width/original_height, crop_left/crop_top (in the resized
  image, for SDXL's time ids), source (path in source_dir), hash (sha256 of the source), text (the
  caption: the user's own `<image>.txt` beside the source when there is one, caption_source "user";
  else empty until the captioning stage fills it). Fields added by later stages (text,
  caption_key, ...) are carried over to the same source image when this stage reruns.
- `train/<repeats>_<trigger> <class_word>/` and `validation/`: the images as JPEG (quality 95, no chroma
  subsampling), each exactly its bucket size, with a `.txt` caption sidecar (empty until captioned; an
  existing one is never overwritten).
- `manifest.csv.params.json`, `metadata.jsonl.params.json`: the params that made them.
- `.probe-cache.json`: per-file probe results the next run reuses (safe to delete).

Reruns are incremental: unchanged source files are not decoded again, unchanged outputs not rewritten.
"""

from ..lazy import lazy_exports

_EXPORTS = {"DatasetParams": ".params", "DatasetResult": ".pipeline", "prepare_dataset": ".pipeline"}
__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)  # decode workers that import a submodule stay small (no pandas)
