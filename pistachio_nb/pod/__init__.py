"""00_setup: is this pod able to do today's work? Pins, GPU, models, ComfyUI health, workflows.

Public verb: `check_pod(params) -> PodReport`. It writes `<workspace>/setup/`: `drift.csv`,
`environment.csv`, `models.csv`, `health.csv` and `workflows.csv`, each with a `.params.json`
sidecar; downloads missing model files into `comfy_models_dir` and pulls ComfyUI's saved workflows
into `workflows_dir`. `pistachio health` runs the same verb. The checks themselves live in
`pistachio_nb.health`, `downloads`, `envcheck`, `watchdog` and `workflow_convert`. The pod as a lock
file (`pistachio pod lock | verify | start`): `lock`, `verify`, `start`, `supervise`; `pod_lock_table` is 00's view.
"""

from pathlib import Path

from ..lazy import lazy_exports

DEFAULT_STATE = Path.home() / ".cache" / "pistachio" / "pod"  # pod lock/start state: hash cache, report, supervisor

_EXPORTS = {  # public name -> the module that defines it
    "SetupParams": ".params",
    "PodReport": ".check",
    "check_pod": ".check",
    "pod_lock_table": ".verify",
}
__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
