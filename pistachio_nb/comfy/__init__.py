"""ComfyUI over its HTTP + WebSocket API: client, workflow templates, graph validation, a protocol test server."""

from ..lazy import lazy_exports

_EXPORTS = {  # public name -> the module that defines it (loaded on first use: `pistachio --help` stays light)
    **dict.fromkeys(("ComfyClient", "ImageRef", "PromptResult", "safe_filename"), ".client"),
    **dict.fromkeys(("ComfyConnectionError", "ComfyError", "ComfyTimeoutError", "ExecutionFailedError", "PromptLostError",
                     "PromptRejectedError", "WorkflowError"), ".errors"),
    **dict.fromkeys(("check_workflow", "fill", "load_workflow"), ".workflow"),
}
__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
