"""ComfyUI errors: unreachable server, timeouts, rejected prompts (readable node_errors), failed runs, bad workflows."""

from __future__ import annotations

from typing import Any

from ..errors import PistachioError


class ComfyError(PistachioError, RuntimeError):
    """Root of every error talking to a ComfyUI server."""


class ComfyConnectionError(ComfyError, ConnectionError):
    """The server could not be reached or dropped the connection (retryable)."""


class ComfyTimeoutError(ComfyError, TimeoutError):
    """A request or a prompt took longer than its timeout (retryable)."""


class PromptLostError(ComfyConnectionError):
    """The server no longer knows a prompt we queued (it restarted); submit it again."""


class WorkflowError(PistachioError, ValueError):
    """A workflow template is unreadable, lacks a node we need, or does not fit the server's nodes."""


def describe_node_errors(error: dict[str, Any], node_errors: dict[str, Any]) -> str:
    """ComfyUI's `{"error", "node_errors"}` validation answer as readable lines, one per problem."""
    lines = [f"{error.get('message', 'invalid prompt')}" + (f" ({error['details']})" if error.get("details") else "")]
    for node_id, entry in sorted(node_errors.items(), key=lambda kv: str(kv[0])):
        for e in entry.get("errors", []):
            details = f": {e['details']}" if e.get("details") else ""
            lines.append(f"  node {node_id} ({entry.get('class_type', '?')}): {e.get('message', e.get('type'))}{details}")
    return "\n".join(lines)


class PromptRejectedError(ComfyError, ValueError):
    """The server answered 400 to POST /prompt: the graph failed validation (not retryable)."""

    def __init__(self, server: str, error: dict[str, Any], node_errors: dict[str, Any]) -> None:
        self.server, self.error, self.node_errors = server, error, node_errors
        super().__init__(
            f"{server} rejected the prompt: {describe_node_errors(error, node_errors)}",
            fix="fix the named node inputs (model/LoRA names must exist on the server: see /object_info)",
        )


class ExecutionFailedError(ComfyError):
    """The prompt ran but failed or was interrupted on the server (`execution_error` / `execution_interrupted`)."""

    def __init__(self, server: str, prompt_id: str, kind: str, data: dict[str, Any]) -> None:
        self.server, self.prompt_id, self.kind, self.data = server, prompt_id, kind, data
        where = f"node {data.get('node_id')} ({data.get('node_type')})" if data.get("node_id") else "the prompt"
        what = f"{data.get('exception_type', '')}: {data.get('exception_message', '').strip()}".strip(": ")
        super().__init__(
            f"{server}: prompt {prompt_id} {kind} at {where}" + (f": {what}" if what else ""),
            fix="read the ComfyUI server log for the traceback; out-of-memory errors may pass on a retry",
        )
