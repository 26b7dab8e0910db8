"""A ComfyUI API client: thin verbs over one requests session and one WebSocket, each with a timeout.

Use as a context manager. `run(graph)` = POST /prompt, then wait for the run on `/ws?clientId=`
(falling back to polling /history when the socket is gone), then the outputs' image refs.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
import websocket

from ..files import write_bytes
from .errors import (ComfyConnectionError, ComfyError, ComfyTimeoutError, ExecutionFailedError, PromptLostError,
                     PromptRejectedError)

DEFAULT_TIMEOUT = (3.05, 30.0)  # (connect, read) seconds for each HTTP request
POLL_SECONDS = 0.25  # history polling interval when the WebSocket is unavailable
GATEWAY_DOWN = (502, 503, 504)  # answered by a proxy (RunPod, nginx) while ComfyUI behind it restarts


def safe_filename(name: str) -> str:
    """A server-given file name reduced to one harmless path component (no `..`, no folders, no drive)."""
    base = re.split(r"[\\/]", str(name))[-1]
    base = re.sub(r"[^\w.\- ()]", "_", base).lstrip(".") or "image"
    return base[:200]


@dataclass(frozen=True)
class ImageRef:
    """An image on the server as named in `outputs.<node>.images[]`."""

    filename: str
    subfolder: str = ""
    type: str = "output"
    node: str = ""

    def params(self) -> dict[str, str]:
        return {"filename": self.filename, "subfolder": self.subfolder, "type": self.type}


@dataclass
class PromptResult:
    prompt_id: str
    images: list[ImageRef]
    seconds: float = 0.0


@dataclass
class _Watch:
    """What the WebSocket reader learned about one prompt."""

    done: threading.Event = field(default_factory=threading.Event)
    outcome: str = ""  # success | execution_error | execution_interrupted
    data: dict[str, Any] = field(default_factory=dict)
    images: list[ImageRef] = field(default_factory=list)


def images_from_outputs(outputs: dict[str, Any]) -> list[ImageRef]:
    """Image refs from a history entry's `outputs` (node id -> {"images": [...]})."""
    return [ImageRef(i["filename"], i.get("subfolder", ""), i.get("type", "output"), node)
            for node, out in sorted(outputs.items()) for i in out.get("images", [])]


class ComfyClient:
    """One ComfyUI server. Thread-safe for concurrent `run` calls (one socket, routed by prompt_id)."""

    def __init__(self, url: str, timeout: tuple[float, float] = DEFAULT_TIMEOUT, use_websocket: bool = True) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.client_id = uuid.uuid4().hex
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy/netrc lookups per request: ComfyUI is on the pod or a tunnel
        self.use_websocket = use_websocket
        self._ws: websocket.WebSocket | None = None
        self._ws_lock = threading.Lock()
        self._watches: dict[str, _Watch] = {}
        self._watch_lock = threading.Lock()

    def __enter__(self) -> ComfyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._ws_lock:
            if self._ws is not None:
                self._ws.close(timeout=1)
                self._ws = None
        self.session.close()

    # ---------------------------------------------------------------- HTTP
    def _request(self, method: str, route: str, **kwargs: Any) -> requests.Response:
        try:
            r = self.session.request(method, self.url + route, timeout=self.timeout, **kwargs)
        except requests.Timeout as err:
            raise ComfyTimeoutError(f"{self.url}{route}: no answer within {self.timeout}s",
                                    fix="check the server is not stuck (GET /queue) or raise the timeout") from err
        except requests.ConnectionError as err:
            raise ComfyConnectionError(f"cannot reach ComfyUI at {self.url} ({route})",
                                       fix="start ComfyUI / check the URL and port; a restarting pod is retried") from err
        if r.status_code in GATEWAY_DOWN:  # a proxy in front of a restarting pod: retryable like a dropped connection
            raise ComfyConnectionError(f"{self.url}{route}: HTTP {r.status_code} from the proxy (ComfyUI down?)",
                                       fix="wait for ComfyUI to come back; run_batch retries these")
        if r.status_code >= 500:  # ComfyUI's own handler failed on this request: the same request fails again
            raise ComfyError(f"{self.url}{route}: ComfyUI answered {r.status_code} (its handler failed on our request): "
                             f"{r.text[:300]}", fix="check the request body (e.g. valid JSON) and the ComfyUI log")
        return r

    def _json(self, method: str, route: str, **kwargs: Any) -> Any:
        r = self._request(method, route, **kwargs)
        if r.status_code != 200:
            raise ComfyError(f"{self.url}{route}: HTTP {r.status_code}: {r.text[:300]}")
        return r.json() if r.content else {}

    def system_stats(self) -> dict[str, Any]:
        return self._json("GET", "/system_stats")

    def object_info(self, node_class: str | None = None) -> dict[str, Any]:
        return self._json("GET", "/object_info" + (f"/{node_class}" if node_class else ""))

    def models(self, folder: str) -> list[str]:
        """Model files the server has in a folder (`checkpoints`, `loras`, ...)."""
        return self._json("GET", f"/models/{folder}")

    def queue(self) -> dict[str, list]:
        return self._json("GET", "/queue")

    # ---------------------------------------------------------------- user data (saved workflows)
    def userdata_list(self, folder: str, recurse: bool = True) -> list[str]:
        """Files below the user's `<folder>` (e.g. `workflows`), as paths relative to it.

        A fresh ComfyUI answers 404 "Directory not found" until its first save creates the folder: that is [].
        """
        route = "/userdata"
        r = self._request("GET", route, params={"dir": folder, "recurse": str(recurse).lower()})
        if r.status_code == 404:
            return []
        if r.status_code != 200:
            raise ComfyError(f"{self.url}{route}?dir={folder}: HTTP {r.status_code}: {r.text[:300]}")
        return [f for f in r.json() if isinstance(f, str)]

    def userdata_file(self, path: str) -> bytes:
        """The bytes of one user file as saved, e.g. `workflows/portraits/a.json` (the path is URL-quoted whole)."""
        route = "/userdata/" + quote(path, safe="")
        r = self._request("GET", route)
        if r.status_code != 200:
            raise ComfyError(f"{self.url}/userdata/{path}: HTTP {r.status_code}: {r.text[:300]}",
                             fix="the file was moved or deleted in ComfyUI meanwhile; pull again")
        return r.content

    def load(self) -> int:
        """Prompts running or pending on the server (everyone's, not only ours)."""
        q = self.queue()
        return len(q["queue_running"]) + len(q["queue_pending"])

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The history entry of a prompt, or None while the server does not have it (yet)."""
        return self._json("GET", f"/history/{prompt_id}").get(prompt_id)

    def interrupt(self, prompt_id: str | None = None) -> None:
        self._json("POST", "/interrupt", json={"prompt_id": prompt_id} if prompt_id else {})

    def cancel(self, prompt_id: str) -> None:
        """Take a prompt off the server: delete it if pending, interrupt it if running."""
        self._json("POST", "/queue", json={"delete": [prompt_id]})
        if any(item[1] == prompt_id for item in self.queue()["queue_running"]):
            self.interrupt(prompt_id)

    def free(self, unload_models: bool = True, free_memory: bool = True) -> None:
        self._json("POST", "/free", json={"unload_models": unload_models, "free_memory": free_memory})

    def upload_image(self, data: bytes, name: str, subfolder: str = "", overwrite: bool = True) -> ImageRef:
        """POST /upload/image; returns the name the server stored it under (it may rename)."""
        r = self._json("POST", "/upload/image", files={"image": (name, data, "image/png")},
                       data={"subfolder": subfolder, "type": "input", "overwrite": str(overwrite).lower()})
        return ImageRef(r["name"], r.get("subfolder", ""), r.get("type", "input"))

    def upload_mask(self, data: bytes, name: str, original: ImageRef, overwrite: bool = True) -> ImageRef:
        """POST /upload/mask: the alpha of `data` becomes the alpha of the already uploaded `original`."""
        ref = json.dumps({"filename": original.filename, "subfolder": original.subfolder, "type": original.type})
        r = self._json("POST", "/upload/mask", files={"image": (name, data, "image/png")},
                       data={"subfolder": original.subfolder, "type": "input", "overwrite": str(overwrite).lower(),
                             "original_ref": ref})
        return ImageRef(r["name"], r.get("subfolder", ""), r.get("type", "input"))

    def view(self, ref: ImageRef) -> bytes:
        r = self._request("GET", "/view", params=ref.params())
        if r.status_code != 200:
            raise ComfyError(f"{self.url}/view: HTTP {r.status_code} for {ref.filename!r}",
                             fix="the image is gone from the server's output folder")
        return r.content

    def download_to(self, ref: ImageRef, folder: str | Path) -> Path:
        """Save an output image into `folder` under a sanitised version of its server name."""
        return write_bytes(Path(folder) / safe_filename(ref.filename), self.view(ref))

    # ---------------------------------------------------------------- prompts
    def submit(self, graph: dict[str, Any], extra_pnginfo: dict[str, Any] | None = None) -> str:
        """POST /prompt; returns the prompt_id. A 400 raises PromptRejectedError with the node errors."""
        self._ensure_ws()
        body: dict[str, Any] = {"prompt": graph, "client_id": self.client_id}
        if extra_pnginfo:
            body["extra_data"] = {"extra_pnginfo": extra_pnginfo}
        r = self._request("POST", "/prompt", json=body)
        if r.status_code == 400:
            answer = r.json()
            raise PromptRejectedError(self.url, answer.get("error", {}), answer.get("node_errors", {}))
        if r.status_code != 200:
            raise ComfyError(f"{self.url}/prompt: HTTP {r.status_code}: {r.text[:300]}")
        return r.json()["prompt_id"]

    def wait(self, prompt_id: str, timeout: float, poll: bool = False) -> PromptResult:
        """Block until the prompt finished; raise ExecutionFailedError, ComfyTimeoutError or PromptLostError.

        `poll=True` for a prompt queued by another client (an earlier run): only the history can tell.
        """
        start = time.monotonic()
        watch = self._watch(prompt_id)
        try:
            while (left := start + timeout - time.monotonic()) > 0:
                if poll or self._ws is None or watch.outcome == "lost":
                    if (entry := self._poll(prompt_id)) is not None:
                        return self._from_history(prompt_id, entry, start)
                    time.sleep(min(POLL_SECONDS, max(0.0, left)))
                elif watch.done.wait(min(POLL_SECONDS, left)) and watch.outcome != "lost":
                    return self._finish(prompt_id, watch, start)
        finally:
            with self._watch_lock:
                self._watches.pop(prompt_id, None)
        raise ComfyTimeoutError(f"{self.url}: prompt {prompt_id} not finished after {timeout:.0f}s",
                                fix="raise job_timeout_seconds, or check the server (GET /queue) for a stuck prompt")

    def run(self, graph: dict[str, Any], timeout: float = 600.0, extra_pnginfo: dict[str, Any] | None = None) -> PromptResult:
        """Submit a graph and wait for its images."""
        return self.wait(self.submit(graph, extra_pnginfo), timeout)

    def _finish(self, prompt_id: str, watch: _Watch, start: float) -> PromptResult:
        if watch.outcome != "success":
            raise ExecutionFailedError(self.url, prompt_id, watch.outcome.replace("execution_", ""), watch.data)
        images = watch.images
        if not images:  # e.g. every node cached: the history has the outputs
            images = images_from_outputs((self.history(prompt_id) or {}).get("outputs", {}))
        return PromptResult(prompt_id, images, time.monotonic() - start)

    def _from_history(self, prompt_id: str, entry: dict[str, Any], start: float) -> PromptResult:
        status = entry.get("status", {})
        if status.get("status_str") != "success":
            kinds = [m for m in status.get("messages", []) if m[0] in ("execution_error", "execution_interrupted")]
            kind, data = kinds[-1] if kinds else ("execution_error", {})
            raise ExecutionFailedError(self.url, prompt_id, kind.replace("execution_", ""), data)
        return PromptResult(prompt_id, images_from_outputs(entry.get("outputs", {})), time.monotonic() - start)

    def _poll(self, prompt_id: str) -> dict[str, Any] | None:
        """History entry if finished; None if still queued; PromptLostError if the server forgot it."""
        entry = self.history(prompt_id)
        if entry is not None and (entry.get("status", {}).get("completed") or entry.get("status", {}).get("status_str")):
            return entry
        q = self.queue()
        if any(item[1] == prompt_id for item in q["queue_running"] + q["queue_pending"]):
            return None
        entry = self.history(prompt_id)  # it may have finished between the two calls
        if entry is None:
            raise PromptLostError(f"{self.url} no longer knows prompt {prompt_id} (restarted?)",
                                  fix="it is submitted again automatically by run_batch")
        return entry

    # ---------------------------------------------------------------- WebSocket
    def _watch(self, prompt_id: str) -> _Watch:
        with self._watch_lock:
            watch = self._watches.get(prompt_id)
            if watch is None:
                watch = self._watches[prompt_id] = _Watch()
            return watch

    def _ensure_ws(self) -> None:
        """Connect the socket (once; again after it dropped). Without it, waits poll the history."""
        if not self.use_websocket or self._ws is not None:
            return
        with self._ws_lock:
            if self._ws is not None:
                return
            ws_url = self.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
            try:
                ws = websocket.create_connection(f"{ws_url}/ws?clientId={self.client_id}", timeout=self.timeout[0],
                                                 skip_utf8_validation=True)  # its pure-Python check cost ms/job
            except (OSError, websocket.WebSocketException):
                return
            ws.settimeout(None)  # the reader blocks; waits have their own deadline
            self._ws = ws
            threading.Thread(target=self._read, args=(ws,), daemon=True, name=f"comfy-ws-{self.url}").start()

    def _read(self, ws: websocket.WebSocket) -> None:
        """Route messages to watches by prompt_id until the socket closes; then wake every waiter."""
        try:
            while True:
                text = ws.recv()
                if isinstance(text, str) and text:
                    self._on_message(json.loads(text))
                elif not text:
                    break
        except (OSError, websocket.WebSocketException, ValueError):
            pass
        with self._ws_lock:
            if self._ws is ws:
                self._ws = None
        with self._watch_lock:
            for watch in self._watches.values():
                if not watch.done.is_set():
                    watch.outcome = "lost"
                    watch.done.set()

    def _on_message(self, msg: dict[str, Any]) -> None:
        kind, data = msg.get("type"), msg.get("data") or {}
        prompt_id = data.get("prompt_id")  # `status` broadcasts have none
        if not prompt_id:
            return
        watch = self._watch(prompt_id)
        if kind == "executed":
            watch.images += images_from_outputs({data.get("node", ""): data.get("output") or {}})
        elif kind in ("execution_success", "execution_error", "execution_interrupted"):
            watch.outcome, watch.data = kind.replace("execution_success", "success"), data
        elif kind == "executing" and data.get("node") is None:
            watch.outcome = watch.outcome or "success"
            watch.done.set()
