"""A ComfyUI API client: thin verbs over one requests session and one WebSocket, each with a timeout.

Use as a context manager. `run(graph)` = POST /prompt, then wait for the run on `/ws?clientId=`
(falling back to polling /history when the socket is gone), then the outputs' image refs.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
import urllib3.exceptions
import websocket

from ..files import current_umask
from .errors import (ComfyConnectionError, ComfyError, ComfyTimeoutError, ExecutionFailedError, PromptLostError,
                     PromptRejectedError)

DEFAULT_TIMEOUT = (3.05, 30.0)  # (connect, read) seconds for each HTTP request
POLL_SECONDS = 0.25  # history polling interval when the WebSocket is unavailable
GATEWAY_DOWN = (502, 503, 504)  # answered by a proxy (RunPod, nginx) while ComfyUI behind it restarts
REQUEST_DEADLINE = 120.0  # overall seconds for one request and its body: the read timeout alone lets a trickle last forever
DOWNLOAD_DEADLINE = 600.0  # overall seconds for one download_to
JSON_MAX_BYTES = 64 << 20  # an API answer (/object_info with many custom node packs is ~20 MB)
VIEW_MAX_BYTES = 256 << 20  # view() holds the image in memory; a large output belongs in download_to
DOWNLOAD_MAX_BYTES = 16 << 30  # download_to streams to disk (videos are outputs too)
READ_CHUNK = 1 << 20  # read1 size: at most one socket read per call, so the deadline is checked between reads


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
    """Image refs from a history entry's `outputs` (node id -> {"images": [...]}); malformed entries are skipped."""
    if not isinstance(outputs, dict):
        return []
    refs = []
    for node, out in sorted(outputs.items(), key=lambda kv: str(kv[0])):
        images = out.get("images") if isinstance(out, dict) else None
        for i in images if isinstance(images, list) else []:
            if isinstance(i, dict) and isinstance(i.get("filename"), str):
                refs.append(ImageRef(i["filename"], str(i.get("subfolder") or ""), str(i.get("type") or "output"), str(node)))
    return refs


def _queued_ids(q: dict[str, Any]) -> set[str]:
    """Prompt ids of a /queue answer's running and pending rows ([number, prompt_id, ...])."""
    rows = q.get("queue_running", []) + q.get("queue_pending", [])
    return {row[1] for row in rows if isinstance(row, (list, tuple)) and len(row) > 1}


def _node_errors(raw: Any) -> dict[str, Any]:
    """The `node_errors` of a 400 answer, keeping only well-formed entries (describe_node_errors reads them)."""
    if not isinstance(raw, dict):
        return {}
    return {k: {**v, "errors": [e for e in v.get("errors", []) if isinstance(e, dict)]
                if isinstance(v.get("errors"), list) else []} for k, v in raw.items() if isinstance(v, dict)}


def _free_name(folder: Path, name: str, tmp: Path) -> Path:
    """Give the finished `tmp` the first unused name of `name`, `stem (1).ext`, `stem (2).ext` ... (browser style).

    Never replaces a file: os.link fails on an existing name atomically, so two writers cannot both take one.
    Where hard links are unsupported, an O_EXCL create reserves the name and the temp file replaces our own reservation.
    """
    stem, suffix = (name[: -len(Path(name).suffix)], Path(name).suffix) if Path(name).suffix else (name, "")
    for n in range(10_000):
        dest = folder / (name if n == 0 else f"{stem} ({n}){suffix}")
        try:
            os.link(tmp, dest)
            return dest
        except FileExistsError:
            continue
        except OSError:  # no hard links here (some network/FAT file systems)
            try:
                os.close(os.open(dest, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            except FileExistsError:
                continue
            os.replace(tmp, dest)
            return dest
    raise ComfyError(f"{folder}: 10000 files named like {name!r} already", fix="empty the output folder")


class ComfyClient:
    """One ComfyUI server. Thread-safe for concurrent `run` calls (one socket, routed by prompt_id)."""

    def __init__(self, url: str, timeout: tuple[float, float] = DEFAULT_TIMEOUT, use_websocket: bool = True,
                 deadline: float = REQUEST_DEADLINE) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.deadline = deadline  # overall seconds per API request, body included
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

    def _read_body(self, r: requests.Response, route: str, max_bytes: int, deadline: float, sink: Any = None) -> bytes:
        """A streamed body within `max_bytes` and by `deadline` (time.monotonic), kept or written to `sink`.

        The read timeout bounds each socket read only, so a 1 byte/s answer never trips it; this loop reads with
        read1 (one socket read per call) and checks the overall deadline between reads (requests documents its
        timeout as per read, not for the whole download). It overruns the deadline by at most one read timeout.
        """
        where = f"{self.url}{route}"
        length = r.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > max_bytes:
            raise ComfyError(f"{where}: answer of {int(length)} bytes is over the {max_bytes}-byte cap; not read",
                             fix="raise max_bytes if this output is really that large")
        parts, got = [], 0
        try:
            while block := r.raw.read1(READ_CHUNK, decode_content=True):
                got += len(block)
                if got > max_bytes:
                    raise ComfyError(f"{where}: answer over the {max_bytes}-byte cap; stopped reading",
                                     fix="raise max_bytes if this output is really that large")
                if sink is None:
                    parts.append(block)
                else:
                    sink.write(block)
                if time.monotonic() > deadline:
                    raise ComfyTimeoutError(f"{where}: answer not complete within its deadline ({got} bytes so far)",
                                            fix="the server or the tunnel is very slow; raise the deadline")
        except urllib3.exceptions.ReadTimeoutError as err:
            raise ComfyTimeoutError(f"{where}: no data within {self.timeout}s mid-answer",
                                    fix="check the server is not stuck or raise the timeout") from err
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.DecodeError) as err:
            raise ComfyConnectionError(f"{where}: the answer broke off ({err})", fix="retry; a restarting pod is retried") from err
        return b"".join(parts)

    def _fetch(self, method: str, route: str, max_bytes: int = JSON_MAX_BYTES, **kwargs: Any) -> tuple[int, bytes]:
        """(status, body) of one request, the body capped and the whole request within `self.deadline`."""
        deadline = time.monotonic() + self.deadline
        with self._request(method, route, stream=True, **kwargs) as r:
            return r.status_code, self._read_body(r, route, max_bytes, deadline)

    def _decode(self, route: str, status: int, body: bytes) -> Any:
        """The JSON of an answer; anything else is a ComfyError naming the server and route."""
        try:
            return json.loads(body)
        except ValueError as err:
            raise ComfyError(f"{self.url}{route}: HTTP {status} answer is not JSON ({err}): {body[:200]!r}",
                             fix="is this URL a ComfyUI server (not a proxy's error page)? check the ComfyUI log") from None

    def _json(self, method: str, route: str, **kwargs: Any) -> Any:
        status, body = self._fetch(method, route, **kwargs)
        if status != 200:
            raise ComfyError(f"{self.url}{route}: HTTP {status}: {body[:300].decode('utf-8', 'replace')}")
        return self._decode(route, status, body) if body else {}

    def _json_dict(self, method: str, route: str, **kwargs: Any) -> dict[str, Any]:
        answer = self._json(method, route, **kwargs)
        if not isinstance(answer, dict):
            raise ComfyError(f"{self.url}{route}: expected a JSON object, got {type(answer).__name__}",
                             fix="is this URL a ComfyUI server? check its version")
        return answer

    def system_stats(self) -> dict[str, Any]:
        return self._json("GET", "/system_stats")

    def object_info(self, node_class: str | None = None) -> dict[str, Any]:
        return self._json("GET", "/object_info" + (f"/{node_class}" if node_class else ""))

    def models(self, folder: str) -> list[str]:
        """Model files the server has in a folder (`checkpoints`, `loras`, ...)."""
        return self._json("GET", f"/models/{folder}")

    def queue(self) -> dict[str, list]:
        q = self._json_dict("GET", "/queue")
        if not all(isinstance(q.get(k), list) for k in ("queue_running", "queue_pending")):
            raise ComfyError(f"{self.url}/queue: answer lacks the queue_running / queue_pending lists: {str(q)[:200]}",
                             fix="is this URL a ComfyUI server? check its version")
        return q

    # ---------------------------------------------------------------- user data (saved workflows)
    def userdata_list(self, folder: str, recurse: bool = True) -> list[str]:
        """Files below the user's `<folder>` (e.g. `workflows`), as paths relative to it.

        A fresh ComfyUI answers 404 "Directory not found" until its first save creates the folder: that is [].
        """
        route = "/userdata"
        status, body = self._fetch("GET", route, params={"dir": folder, "recurse": str(recurse).lower()})
        if status == 404:
            return []
        if status != 200:
            raise ComfyError(f"{self.url}{route}?dir={folder}: HTTP {status}: {body[:300].decode('utf-8', 'replace')}")
        answer = self._decode(f"{route}?dir={folder}", status, body)
        return [f for f in answer if isinstance(f, str)] if isinstance(answer, list) else []

    def userdata_file(self, path: str) -> bytes:
        """The bytes of one user file as saved, e.g. `workflows/portraits/a.json` (the path is URL-quoted whole)."""
        route = "/userdata/" + quote(path, safe="")
        status, body = self._fetch("GET", route)
        if status != 200:
            raise ComfyError(f"{self.url}/userdata/{path}: HTTP {status}: {body[:300].decode('utf-8', 'replace')}",
                             fix="the file was moved or deleted in ComfyUI meanwhile; pull again")
        return body

    def subscribe_logs(self, client_id: str, enabled: bool = True) -> bool:
        """PATCH /internal/logs/subscribe: the server log streams as `logs` messages to that client's WebSocket.

        False when the server has no such route (it is internal to ComfyUI's frontend and may move).
        """
        status, body = self._fetch("PATCH", "/internal/logs/subscribe", json={"clientId": client_id, "enabled": enabled})
        if status in (404, 405):
            return False
        if status != 200:
            raise ComfyError(f"{self.url}/internal/logs/subscribe: HTTP {status}: {body[:300].decode('utf-8', 'replace')}")
        return True

    def raw_logs(self) -> list[dict[str, str]] | None:
        """GET /internal/logs/raw: the server's last log lines as `{"t": local ISO time, "m": text}` (ComfyUI keeps 300).

        None when the server has no such route.
        """
        status, body = self._fetch("GET", "/internal/logs/raw")
        if status in (404, 405):
            return None
        if status != 200:
            raise ComfyError(f"{self.url}/internal/logs/raw: HTTP {status}: {body[:300].decode('utf-8', 'replace')}")
        entries = self._decode("/internal/logs/raw", status, body)
        entries = entries.get("entries") if isinstance(entries, dict) else None
        return [e for e in entries if isinstance(e, dict) and isinstance(e.get("m"), str)] if isinstance(entries, list) else []

    def load(self) -> int:
        """Prompts running or pending on the server (everyone's, not only ours)."""
        q = self.queue()
        return len(q["queue_running"]) + len(q["queue_pending"])

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The history entry of a prompt, or None while the server does not have it (yet)."""
        route = f"/history/{prompt_id}"
        entry = self._json_dict("GET", route).get(prompt_id)
        if entry is not None and not isinstance(entry, dict):
            raise ComfyError(f"{self.url}{route}: the entry is a {type(entry).__name__}, not an object",
                             fix="is this URL a ComfyUI server? check its version")
        return entry

    def interrupt(self, prompt_id: str | None = None) -> None:
        self._json("POST", "/interrupt", json={"prompt_id": prompt_id} if prompt_id else {})

    def cancel(self, prompt_id: str) -> None:
        """Take a prompt off the server: delete it if pending, interrupt it if running."""
        self._json("POST", "/queue", json={"delete": [prompt_id]})
        if prompt_id in _queued_ids({"queue_running": self.queue()["queue_running"]}):
            self.interrupt(prompt_id)

    def free(self, unload_models: bool = True, free_memory: bool = True) -> None:
        self._json("POST", "/free", json={"unload_models": unload_models, "free_memory": free_memory})

    def upload_image(self, data: bytes, name: str, subfolder: str = "", overwrite: bool = True) -> ImageRef:
        """POST /upload/image; returns the name the server stored it under (it may rename)."""
        r = self._json_dict("POST", "/upload/image", files={"image": (name, data, "image/png")},
                       data={"subfolder": subfolder, "type": "input", "overwrite": str(overwrite).lower()})
        return self._uploaded(r)

    def upload_mask(self, data: bytes, name: str, original: ImageRef, overwrite: bool = True) -> ImageRef:
        """POST /upload/mask: the alpha of `data` becomes the alpha of the already uploaded `original`."""
        ref = json.dumps({"filename": original.filename, "subfolder": original.subfolder, "type": original.type})
        r = self._json_dict("POST", "/upload/mask", files={"image": (name, data, "image/png")},
                       data={"subfolder": original.subfolder, "type": "input", "overwrite": str(overwrite).lower(),
                             "original_ref": ref})
        return self._uploaded(r)

    def _uploaded(self, r: dict[str, Any]) -> ImageRef:
        if not isinstance(r.get("name"), str):
            raise ComfyError(f"{self.url}/upload: answer has no file name: {str(r)[:200]}", fix="check the ComfyUI log")
        return ImageRef(r["name"], str(r.get("subfolder") or ""), str(r.get("type") or "input"))

    def _view(self, ref: ImageRef, max_bytes: int, deadline: float | None, sink: Any = None) -> bytes:
        end = time.monotonic() + (self.deadline if deadline is None else deadline)
        route = f"/view?filename={quote(ref.filename)}"
        with self._request("GET", "/view", params=ref.params(), stream=True) as r:
            if r.status_code != 200:
                raise ComfyError(f"{self.url}/view: HTTP {r.status_code} for {ref.filename!r}",
                                 fix="the image is gone from the server's output folder")
            return self._read_body(r, route, max_bytes, end, sink)

    def view(self, ref: ImageRef, max_bytes: int = VIEW_MAX_BYTES, deadline: float | None = None) -> bytes:
        """The bytes of an output (in memory: capped at `max_bytes`, done within `deadline` s, default self.deadline)."""
        return self._view(ref, max_bytes, deadline)

    def download_to(self, ref: ImageRef, folder: str | Path, max_bytes: int = DOWNLOAD_MAX_BYTES,
                    deadline: float = DOWNLOAD_DEADLINE) -> Path:
        """Stream an output into `folder` under its sanitised server name, never replacing a file (`name (1).png`).

        The body goes to a hidden temp file (capped, with an overall deadline) and gets its name only when complete.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".view.", suffix=".part", dir=folder)
        os.fchmod(fd, 0o666 & ~current_umask())  # the mode open() would give, not mkstemp's 0600
        try:
            with os.fdopen(fd, "wb") as fh:
                self._view(ref, max_bytes, deadline, sink=fh)
            return _free_name(folder, safe_filename(ref.filename), Path(tmp))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    # ---------------------------------------------------------------- prompts
    def submit(self, graph: dict[str, Any], extra_pnginfo: dict[str, Any] | None = None) -> str:
        """POST /prompt; returns the prompt_id. A 400 raises PromptRejectedError with the node errors."""
        self._ensure_ws()
        body: dict[str, Any] = {"prompt": graph, "client_id": self.client_id}
        if extra_pnginfo:
            body["extra_data"] = {"extra_pnginfo": extra_pnginfo}
        status, text = self._fetch("POST", "/prompt", json=body)
        if status == 400:
            answer = self._decode("/prompt", status, text)
            if not isinstance(answer, dict):
                raise ComfyError(f"{self.url}/prompt: HTTP 400 with a {type(answer).__name__}: {text[:200]!r}")
            error = answer.get("error")
            error = error if isinstance(error, dict) else {"message": str(error)} if error else {}
            raise PromptRejectedError(self.url, error, _node_errors(answer.get("node_errors")))
        if status != 200:
            raise ComfyError(f"{self.url}/prompt: HTTP {status}: {text[:300].decode('utf-8', 'replace')}")
        answer = self._decode("/prompt", status, text)
        prompt_id = answer.get("prompt_id") if isinstance(answer, dict) else None
        if not isinstance(prompt_id, str) or not prompt_id:
            raise ComfyError(f"{self.url}/prompt: the answer has no prompt_id: {text[:200]!r}",
                             fix="is this URL a ComfyUI server? check its version and log")
        return prompt_id

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
        status = entry.get("status") if isinstance(entry.get("status"), dict) else {}
        if status.get("status_str") != "success":
            messages = status.get("messages") if isinstance(status.get("messages"), list) else []
            kinds = [m for m in messages if isinstance(m, (list, tuple)) and len(m) > 1 and isinstance(m[1], dict)
                     and m[0] in ("execution_error", "execution_interrupted")]
            kind, data = kinds[-1][:2] if kinds else ("execution_error", {})
            raise ExecutionFailedError(self.url, prompt_id, kind.replace("execution_", ""), data)
        return PromptResult(prompt_id, images_from_outputs(entry.get("outputs", {})), time.monotonic() - start)

    def _poll(self, prompt_id: str) -> dict[str, Any] | None:
        """History entry if finished; None if still queued; PromptLostError if the server forgot it."""
        entry = self.history(prompt_id)
        status = entry.get("status") if entry is not None else None
        if isinstance(status, dict) and (status.get("completed") or status.get("status_str")):
            return entry
        if prompt_id in _queued_ids(self.queue()):
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
        """Route messages to watches by prompt_id until the socket closes; then wake every waiter (they poll).

        A malformed message is skipped, like websocket-client's WebSocketApp survives a failing on_message;
        however the reader ends, `finally` marks the watches lost so no wait hangs on a dead socket.
        """
        try:
            while True:
                text = ws.recv()
                if isinstance(text, str) and text:
                    try:
                        self._on_message(json.loads(text))
                    except Exception:  # noqa: BLE001 - one bad message must not end the reader
                        continue
                elif not text:
                    break
        except Exception:  # noqa: BLE001 - socket closed, or anything unforeseen: either way the waits poll instead
            pass
        finally:
            with self._ws_lock:
                if self._ws is ws:
                    self._ws = None
            with self._watch_lock:
                for watch in self._watches.values():
                    if not watch.done.is_set():
                        watch.outcome = "lost"
                        watch.done.set()

    def _on_message(self, msg: Any) -> None:
        if not isinstance(msg, dict) or not isinstance(msg.get("data"), dict):
            return
        kind, data = msg.get("type"), msg["data"]
        prompt_id = data.get("prompt_id")  # `status` broadcasts have none
        if not isinstance(prompt_id, str) or not prompt_id:
            return
        watch = self._watch(prompt_id)
        if kind == "executed":
            watch.images += images_from_outputs({str(data.get("node", "")): data.get("output") or {}})
        elif kind in ("execution_success", "execution_error", "execution_interrupted"):
            watch.outcome, watch.data = kind.replace("execution_success", "success"), data
        elif kind == "executing" and data.get("node") is None:
            watch.outcome = watch.outcome or "success"
            watch.done.set()
