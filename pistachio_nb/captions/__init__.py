"""02_captioning: per-image captions with the trigger word first, written safely beside the dataset images.

Public verb: `caption_dataset(params) -> CaptionResult`. It reads `<workspace>/dataset/metadata.jsonl`
(written by 01_dataset) and, for every listed image, writes the caption to the `.txt` sidecar beside
the image (kohya) and to the row's `text` (plus `caption_source`, `caption_key`) in metadata.jsonl.
Existing captions are kept unless `overwrite`; replaced text is copied to
`dataset/caption_backups/<run>/` first. It also writes `dataset/captions.csv` (what happened to each
image) and `dataset/caption_lint.csv` (trigger, CLIP tokens, empty/duplicate, leftover phrases), each
with a `.params.json` sidecar. Helpers to look before and after: `dataset_table`, `trigger_tokens`,
`review_captions`, `bulk_replace`, `lint_dataset`, `lint_summary`, and the result's `counts`, `table`,
`lint`, `lint_summary`, `sample_grid(n)`. Modules: captioners, postprocess, store, lint, review, pipeline.
"""

from ..lazy import lazy_exports

_EXPORTS = {  # public name -> the module that defines it
    "CaptioningParams": ".params",
    "CaptionResult": ".pipeline",
    "bulk_replace": ".pipeline",
    "caption_dataset": ".pipeline",
    "dataset_table": ".pipeline",
    "lint_dataset": ".pipeline",
    "lint_summary": ".lint",
    "review_captions": ".pipeline",
    "trigger_tokens": ".pipeline",
}
__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
