"""ComfyUI over its HTTP + WebSocket API: client, workflow templates, graph validation, a protocol test server."""

from .client import ComfyClient, ImageRef, PromptResult, safe_filename
from .errors import (ComfyConnectionError, ComfyError, ComfyTimeoutError, ExecutionFailedError, PromptLostError,
                     PromptRejectedError, WorkflowError)
from .workflow import check_workflow, fill, load_workflow

__all__ = ["ComfyClient", "ImageRef", "PromptResult", "safe_filename", "ComfyConnectionError", "ComfyError",
           "ComfyTimeoutError", "ExecutionFailedError", "PromptLostError", "PromptRejectedError", "WorkflowError",
           "check_workflow", "fill", "load_workflow"]
