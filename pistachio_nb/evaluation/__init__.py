"""04_checkpoints: compare LoRA checkpoints by identity, prompt fidelity, memorization and diversity; recommend one.

Public verb: `compare_checkpoints(params) -> ComparisonResult` (grid, scores, summary, recommendation, all
under `<workspace>/comparison/`); the result's `cached`, `images`, `summary`, `recommendation`,
`grid_figure()` and `metric_figure()` are what the notebook shows. `plan_comparison(params)` lays out the
grid from the files alone (no model loads), to look at before the slow part.
"""

_EXPORTS = {  # public name -> the module that defines it
    "CheckpointsParams": ".params",
    "ComparisonResult": ".compare",
    "compare_checkpoints": ".compare",
    "plan_comparison": ".compare",
    "read_recommendation": ".recommend",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    """Import a verb's module on first use, so importing the params (the profile loader does) stays light."""
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
