"""Video stage (Wan2.2 image-to-video): VRAM planning beside the SDXL stack, a tiny model, a local backend."""

from ..lazy import lazy_exports

_EXPORTS = {  # public name -> the module that defines it
    "WAN_MODELS": ".planner",
    "VideoPlan": ".planner",
    "plan_video": ".planner",
    "plan_table": ".planner",
    "swap_plan": ".planner",
    "build_wan_i2v": ".tiny",
    "VideoRequest": ".local",
    "load_pipeline": ".local",
    "make_video": ".local",
    "VideoParams": ".params",
    "VideoResult": ".run",
    "run_video": ".run",
    "plan": ".run",
    "plan_clips": ".run",
}
__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
