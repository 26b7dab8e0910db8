"""04_checkpoints: compare LoRA checkpoints by identity, prompt fidelity, memorization and diversity; recommend one.

Public verb: `compare_checkpoints(params) -> ComparisonResult` (grid, scores, summary, recommendation, all
under `<workspace>/comparison/`); the result's `cached`, `images`, `summary`, `recommendation`,
`grid_figure()` and `metric_figure()` are what the notebook shows. `plan_comparison(params)` lays out the
grid from the files alone (no model loads), to look at before the slow part.
"""

from ..lazy import lazy_exports

_EXPORTS = {  # public name -> the module that defines it
    "CheckpointsParams": ".params",
    "ComparisonResult": ".compare",
    "compare_checkpoints": ".compare",
    "plan_comparison": ".compare",
    "read_recommendation": ".recommend",
}
__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
