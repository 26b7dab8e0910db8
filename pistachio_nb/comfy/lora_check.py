"""Does ComfyUI really apply a LoRA? Render one seed at strength 0 and at a fresh strength near 1, compare the
pixels, and read ComfyUI's own log of that load for unmatched keys.

A LoRA whose key names ComfyUI does not know is a silent no-op: the picture equals strength 0's, and the
only trace is one `lora key not loaded: <key>` log line per key (or `ERROR lora <key> shape '[..]' is invalid`
when a key matches but its shape does not, logged when the sampler patches the weights). ComfyUI 0.3.64 has
no per-prompt log, so the render runs on a WebSocket of its own subscribed to the server log
(`PATCH /internal/logs/subscribe`): every line the server writes between this prompt's `execution_start`
and `execution_success` belongs to it (one prompt runs at a time). Without that route the last 300 lines of
`GET /internal/logs/raw` are matched by the same time window instead (server-local time, read as this
machine's time zone). A cached LoraLoader logs nothing, so the strength is unique per check and the node
must not be in `execution_cached`. Both routes are marked internal by ComfyUI: when they are missing, the
verdict says so instead of guessing. A strength-0 picture of one flat colour (NaNs: SDXL's VAE in fp16)
fails the check with that cause rather than as a LoRA that changes nothing.
"""

from __future__ import annotations

import io
import json
import random
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import websocket
from PIL import Image

from .client import ComfyClient, images_from_outputs
from .errors import ComfyError, ComfyTimeoutError, ExecutionFailedError

PROBLEM_LINE = re.compile(r"lora key not loaded: \S+|ERROR lora \S+ shape '\[[\d, ]*\]' is invalid.*")
MIN_MEAN_DIFFERENCE = 0.5  # mean absolute pixel difference (0-255 levels) below which strength 1 counts as no change


@dataclass
class Render:
    """One prompt run on its own socket: its images (PNG bytes), the nodes served from cache, its log lines."""

    prompt_id: str
    images: list[bytes]
    cached: list[str]
    log: list[str] | None  # None: the server streams no log to us
    window: tuple[int, int] = (0, 0)  # execution_start / execution_success, server epoch milliseconds


@dataclass
class Verification:
    """The verdict on one LoRA file in ComfyUI: pixel change at strength 1 and ComfyUI's log of the load."""

    lora: str
    strength: float
    difference: float  # mean absolute pixel difference, strength 0 vs `strength`, in 0-255 levels
    problems: list[str] = field(default_factory=list)  # ComfyUI's log lines about keys it did not apply
    log_source: str = "stream"  # stream | raw (the last 300 lines) | unavailable
    note: str = ""
    flat: bool = False  # the strength-0 picture is one colour: NaNs in the VAE (SDXL's in fp16) or a broken checkpoint

    @property
    def changes_picture(self) -> bool:
        return self.difference >= MIN_MEAN_DIFFERENCE

    @property
    def ok(self) -> bool:
        return self.changes_picture and not self.problems and not self.flat

    def rows(self) -> list[dict[str, str]]:
        """PASS / WARN / FAIL rows (check, found) for a table."""
        picture = f"mean pixel difference {self.difference:.2f} (strength 0 vs {self.strength})"
        rows = [{"status": "PASS" if self.changes_picture else "FAIL", "check": "LoRA changes the picture", "found": picture}]
        if self.flat:
            rows.insert(0, {"status": "FAIL", "check": "the picture without the LoRA",
                            "found": "one flat colour: the checkpoint or its VAE renders nothing (NaNs: SDXL's VAE in fp16 "
                                     "makes black pictures; try --fp32-vae or the fp16-fix VAE), so no LoRA can be judged"})
        if self.log_source == "unavailable":
            rows.append({"status": "WARN", "check": "ComfyUI log of the load", "found": self.note})
        else:
            found = f"{len(self.problems)} unapplied key lines" + (f", first: {self.problems[0]}" if self.problems else "")
            rows.append({"status": "FAIL" if self.problems else "PASS", "check": "ComfyUI log of the load",
                         "found": f"{found} ({'streamed' if self.log_source == 'stream' else 'last 300 lines'})"})
        return rows


def lora_problems(lines: list[str]) -> list[str]:
    """The log lines saying a LoRA key was not applied (unknown name, or a shape that does not fit)."""
    return [m.group(0) for line in lines for m in [PROBLEM_LINE.search(line)] if m]


def _epoch_ms(local_iso: str) -> float:
    """A log entry's time (server-local, no zone, as ComfyUI writes it) in epoch ms, read in this machine's zone."""
    return datetime.fromisoformat(local_iso).timestamp() * 1000


def lines_in_window(entries: list[dict[str, str]], start_ms: int, end_ms: int) -> list[str]:
    """Texts of `/internal/logs/raw` entries written between a prompt's execution_start and execution_success."""
    return [e["m"] for e in entries if isinstance(e.get("t"), str) and start_ms <= _epoch_ms(e["t"]) <= end_ms]


def mean_difference(a: bytes, b: bytes) -> float:
    """Mean absolute difference of two images' RGB pixels in 0-255 levels (different sizes: 255)."""
    with Image.open(io.BytesIO(a)) as x, Image.open(io.BytesIO(b)) as y:
        if x.size != y.size:
            return 255.0
        return float(np.abs(np.asarray(x.convert("RGB"), np.int16) - np.asarray(y.convert("RGB"), np.int16)).mean())


def is_flat(png: bytes) -> bool:
    """True when every pixel has the same colour (a black NaN render looks like this)."""
    with Image.open(io.BytesIO(png)) as im:
        pixels = np.asarray(im.convert("RGB"))
    return bool((pixels == pixels.reshape(-1, 3)[0]).all())


def _connect(client: ComfyClient) -> websocket.WebSocket:
    url = client.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    try:
        return websocket.create_connection(f"{url}/ws?clientId={client.client_id}", timeout=client.timeout[0],
                                           skip_utf8_validation=True)
    except (OSError, websocket.WebSocketException) as err:
        raise ComfyError(f"{client.url}/ws: no WebSocket ({err})", fix="check ComfyUI runs and the URL (a proxy must pass /ws)") from err


def render(client: ComfyClient, graph: dict[str, Any], timeout: float) -> Render:
    """Run `graph` watched on our own socket (subscribed to the server log); `client` must not use its own socket."""
    ws = _connect(client)
    try:
        streamed = client.subscribe_logs(client.client_id)
        prompt_id = client.submit(graph)
        log, cached, window = _watch(ws, client, prompt_id, timeout)
    finally:
        ws.close(timeout=1)
    images = [client.view(ref) for ref in images_from_outputs((client.history(prompt_id) or {}).get("outputs", {}))]
    return Render(prompt_id, images, cached, log if streamed else None, window)


def _watch(ws: websocket.WebSocket, client: ComfyClient, prompt_id: str, timeout: float) -> tuple[list[str], list[str], tuple[int, int]]:
    """Read the socket until the prompt is done: its log lines (start..success), cached node ids, time window."""
    deadline = time.monotonic() + timeout
    log: list[str] = []
    cached: list[str] = []
    start = end = 0
    running = False
    while (left := deadline - time.monotonic()) > 0:
        ws.settimeout(left)
        try:
            text = ws.recv()
        except websocket.WebSocketTimeoutException:
            break
        except (OSError, websocket.WebSocketException) as err:
            raise ComfyError(f"{client.url}/ws closed while prompt {prompt_id} ran ({err})", fix="check the ComfyUI log") from err
        msg = json.loads(text) if isinstance(text, str) and text else {}
        kind, data = msg.get("type"), msg.get("data") or {}
        if kind == "logs" and running:
            log += [e.get("m", "") for e in data.get("entries") or [] if isinstance(e, dict)]
        if data.get("prompt_id") != prompt_id:
            continue
        if kind == "execution_start":
            running, start = True, int(data.get("timestamp") or 0)
        elif kind == "execution_cached":
            cached = [str(n) for n in data.get("nodes") or []]
        elif kind == "execution_success":
            running, end = False, int(data.get("timestamp") or 0)
        elif kind in ("execution_error", "execution_interrupted"):
            raise ExecutionFailedError(client.url, prompt_id, kind.replace("execution_", ""), data)
        elif kind == "executing" and data.get("node") is None:
            return log, cached, (start, end)
    client.cancel(prompt_id)
    raise ComfyTimeoutError(f"{client.url}: verification prompt {prompt_id} not finished after {timeout:.0f}s",
                            fix="raise the timeout, or check the server (GET /queue) for a stuck prompt")


def fresh_strength() -> float:
    """A strength near 1 that no earlier prompt used, so ComfyUI cannot serve the LoraLoader from its cache."""
    return round(1.0 + random.randint(1, 999_999) * 1e-9, 9)


def verify_lora(client: ComfyClient, graph_at: Any, lora: str, lora_node: str, timeout: float = 600.0) -> Verification:
    """Render `graph_at(strength)` at 0 and at a fresh strength near 1; compare pixels and read the load's log.

    `graph_at` fills the workflow for one strength; `lora_node` is the LoraLoader node id that must run fresh.
    """
    strength = fresh_strength()
    base = render(client, graph_at(0.0), timeout)
    with_lora = render(client, graph_at(strength), timeout)
    if lora_node in with_lora.cached:
        raise ComfyError(f"{client.url} served LoraLoader node {lora_node} from its cache: nothing to verify",
                         fix="run again (each check uses a new strength); report this if it persists")
    if not base.images or not with_lora.images:
        raise ComfyError(f"{client.url}: the verification workflow saved no image", fix="its output node must be SaveImage")
    v = Verification(lora, strength, mean_difference(base.images[0], with_lora.images[0]), flat=is_flat(base.images[0]))
    if with_lora.log is not None:
        v.problems = lora_problems(with_lora.log)
        return v
    raw = client.raw_logs()
    if raw is None:
        v.log_source = "unavailable"
        v.note = (f"{client.url} has neither /internal/logs/subscribe nor /internal/logs/raw (internal ComfyUI routes): "
                  "unmatched keys could not be read from its log; only the picture was checked")
        return v
    v.log_source = "raw"
    v.problems = lora_problems(lines_in_window(raw, *with_lora.window))
    return v
