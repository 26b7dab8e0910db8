"""Video stage (Wan2.2 image-to-video): VRAM planning for the pod beside the SDXL stack."""

from ..lazy import lazy_exports

_EXPORTS = {  # public name -> the module that defines it
    "WAN_MODELS": ".planner",
    "VideoPlan": ".planner",
    "plan_video": ".planner",
    "plan_table": ".planner",
    "swap_plan": ".planner",
}
__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
