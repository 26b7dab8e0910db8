"""The test server's prompt queue and executor: ComfyUI's WebSocket message order, history and SaveImage files.

It does not run models: each output node gets a small real PNG derived from the graph (so seed and
prompt change the pixels), or for SaveVideo a small real mp4 of `length` frames at CreateVideo's fps, after a
configurable delay. `Behaviour` tells it to fail, hang or crash.
A LoraLoader reads its file's keys (`comfy_lora`): one that changes nothing draws the picture of strength 0,
and the keys it does not load are logged as ComfyUI logs them. The log keeps ComfyUI's last 300 lines
(`/internal/logs/raw`) and streams each line to subscribed clients as a `logs` message.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import random
import string
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .comfy_graph import execution_order, is_link, signatures, upstream
from .comfy_lora import LoraEffect, lora_effect

SIZE_NODES = ("EmptyLatentImage", "EmptyImage", "WanImageToVideo")
LOG_CAPACITY = 300  # ComfyUI's app/logger.py deque(maxlen=300)


@dataclass
class Behaviour:
    """Knobs tests turn: job duration, failures, hangs, a crash-and-restart, hostile file names."""

    delay: float = 0.0  # seconds each prompt takes
    fail_next: int = 0  # the next N prompts end in execution_error
    fail_when_text: str = ""  # prompts with a string input containing this end in execution_error
    hang_next: int = 0  # the next N prompts run until /interrupt
    restart_after: int | None = None  # after N started prompts, crash mid-prompt and come back (queue, history lost)
    restart_seconds: float = 0.5  # how long the crashed server stays down
    evil_filenames: bool = False  # report output names like ../../x.png (a hostile server)


@dataclass
class QueueItem:
    number: int
    prompt_id: str
    graph: dict[str, Any]
    extra_data: dict[str, Any]
    outputs: list[str]

    def as_list(self) -> list:
        """ComfyUI's queue/history row: [number, prompt_id, prompt, extra_data, outputs_to_execute]."""
        return [self.number, self.prompt_id, self.graph, self.extra_data, self.outputs]


class Interrupted(Exception):
    pass


class Failed(Exception):
    """A prompt ends in execution_error; `node` (default: the slow node), exception type and message as reported."""

    def __init__(self, node: str | None = None, kind: str = "RuntimeError",
                 message: str = "imitation: told to fail this prompt\n") -> None:
        super().__init__(message)
        self.node, self.kind, self.message = node, kind, message


def now_ms() -> int:
    return int(time.time() * 1000)


def upstream_value(graph: dict[str, Any], node_id: str, name: str, default: Any) -> Any:
    """First literal input `name` on a size node upstream of `node_id` (width, height, batch_size)."""
    for nid in reversed(upstream(graph, node_id)):
        node = graph[nid]
        if node["class_type"] in SIZE_NODES and not is_link(node["inputs"].get(name)):
            return node["inputs"].get(name, default)
    return default


def image_size(graph: dict[str, Any], node_id: str, input_dir: Path) -> tuple[int, int]:
    """The size an output node's images get: from the nearest EmptyLatentImage/EmptyImage or LoadImage upstream."""
    for nid in reversed(upstream(graph, node_id)):
        node = graph[nid]
        if node["class_type"] in SIZE_NODES:
            return int(node["inputs"].get("width", 64)), int(node["inputs"].get("height", 64))
        if node["class_type"] == "LoadImage" and (input_dir / str(node["inputs"].get("image"))).is_file():
            with Image.open(input_dir / str(node["inputs"]["image"])) as im:
                return im.size
    return 64, 64


def drawn_as(graph: dict[str, Any], nid: str, effects: dict[str, LoraEffect]) -> dict[str, Any]:
    """What decides a node's pixels: a LoraLoader counts only by its effect (a no-op equals strength 0)."""
    if nid not in effects:
        return graph[nid]
    links = {k: v for k, v in graph[nid]["inputs"].items() if is_link(v)}
    return {"class_type": graph[nid]["class_type"], "inputs": links, "lora": effects[nid].digest}


def render(graph: dict[str, Any], node_id: str, index: int, size: tuple[int, int],
           effects: dict[str, LoraEffect] | None = None) -> Image.Image:
    """A deterministic smooth-colour picture of the graph's size, derived from everything upstream of `node_id`."""
    nodes = {nid: drawn_as(graph, nid, effects or {}) for nid in upstream(graph, node_id)}
    key = json.dumps(nodes, sort_keys=True).encode() + bytes([index % 256])
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))
    return Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize(size, Image.BILINEAR)


def render_png(graph: dict[str, Any], node_id: str, index: int, size: tuple[int, int], extra_pnginfo: dict[str, Any],
               effects: dict[str, LoraEffect] | None = None) -> bytes:
    """`render` as PNG bytes with the graph (and extra_pnginfo) in its text chunks, as SaveImage writes them."""
    image = render(graph, node_id, index, size, effects)
    info = PngInfo()
    info.add_text("prompt", json.dumps(graph))
    for key_name, value in extra_pnginfo.items():
        info.add_text(key_name, json.dumps(value))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info, compress_level=1)
    return buf.getvalue()


def next_counter(folder: Path, prefix: str) -> int:
    """ComfyUI's get_save_image_path numbering: one past the highest `<prefix>_NNNNN_*` (any type) in the folder."""
    numbers = [int(p.name[len(prefix) + 1:len(prefix) + 6]) for p in folder.glob(f"{prefix}_[0-9][0-9][0-9][0-9][0-9]_*")]
    return max(numbers, default=0) + 1


def render_mp4(graph: dict[str, Any], node_id: str, size: tuple[int, int], dest: Path, metadata: dict[str, Any]) -> None:
    """SaveVideo's file: `length` frames (WanImageToVideo upstream) panning over `render`, at CreateVideo's fps."""
    from pistachio_nb.video.local import write_mp4

    base = np.asarray(render(graph, node_id, 0, size))
    frames = np.stack([np.roll(base, 2 * i, axis=1) for i in range(int(upstream_value(graph, node_id, "length", 1)))])
    fps = next((graph[n]["inputs"]["fps"] for n in upstream(graph, node_id) if graph[n]["class_type"] == "CreateVideo"), 30)
    write_mp4(frames, dest, round(float(fps)), {k: json.dumps(v) for k, v in metadata.items()})


@dataclass
class Engine:
    """Queue + executor living on the server's event loop; `send(type, data, sid)` delivers WS messages."""

    root: Path
    behaviour: Behaviour
    send: Callable[[str, dict[str, Any], str | None], None]
    on_crash: Callable[[], None]
    queue: list[QueueItem] = field(default_factory=list)
    running: QueueItem | None = None
    history: dict[str, dict[str, Any]] = field(default_factory=dict)
    number: int = 0
    started: int = 0
    counters: dict[tuple[Path, str], int] = field(default_factory=dict)  # next SaveImage number per prefix
    cache: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # node signature -> its UI output
    output_classes: set[str] = field(default_factory=lambda: {"SaveImage", "PreviewImage", "SaveVideo"})
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    interrupt_flag: asyncio.Event = field(default_factory=asyncio.Event)
    log: deque = field(default_factory=lambda: deque(maxlen=LOG_CAPACITY))  # {"t": local ISO time, "m": text}
    log_subscribers: set[str] = field(default_factory=set)  # client ids PATCHed into /internal/logs/subscribe

    def __post_init__(self) -> None:
        self.log_line("Starting server\n")  # as ComfyUI's main.py, so the log is never empty

    def log_line(self, text: str) -> None:
        """One line of the server log, kept (last 300) and sent to each subscribed client, as ComfyUI's LogInterceptor."""
        entry = {"t": datetime.now().isoformat(), "m": text + "\n"}
        self.log.append(entry)
        for sid in list(self.log_subscribers):
            self.send("logs", {"entries": [entry], "size": None}, sid)

    def lora_effects(self, graph: dict[str, Any]) -> dict[str, LoraEffect]:
        """Each LoraLoader's effect, read from its file; an unreadable file fails the prompt at that node."""
        effects = {}
        for nid, node in graph.items():
            if node["class_type"] == "LoraLoader":
                inputs = node["inputs"]
                try:
                    effects[nid] = lora_effect(self.root / "models" / "loras" / str(inputs["lora_name"]),
                                               float(inputs["strength_model"]), float(inputs["strength_clip"]))
                except Exception as err:  # noqa: BLE001 - e.g. not a safetensors file: ComfyUI's load_torch_file raises
                    raise Failed(nid, type(err).__name__, f"{err}\n") from err
        return effects

    def remaining(self) -> int:
        return len(self.queue) + (self.running is not None)

    def status(self) -> None:
        """Broadcast the queue length to every client."""
        self.send("status", {"status": {"exec_info": {"queue_remaining": self.remaining()}}}, None)

    def enqueue(self, number: int, prompt_id: str, graph: dict[str, Any], extra: dict[str, Any], outputs: list[str]) -> None:
        """Queue a validated prompt; ComfyUI runs the lowest number first (`front` prompts have negative ones)."""
        self.queue.append(QueueItem(number, prompt_id, graph, extra, outputs))
        self.status()
        self.wakeup.set()

    def reset(self) -> None:
        """What a process restart loses: the queue, the running prompt and the history."""
        self.queue.clear()
        self.history.clear()
        self.cache.clear()
        self.running = None
        self.interrupt_flag.set()

    async def run_forever(self) -> None:
        while True:
            while not self.queue:
                self.wakeup.clear()
                await self.wakeup.wait()
            item = min(self.queue, key=lambda i: i.number)
            self.queue.remove(item)
            self.running = item
            self.interrupt_flag.clear()
            self.started += 1
            if self.behaviour.restart_after is not None and self.started > self.behaviour.restart_after:
                self.behaviour.restart_after = None
                self.on_crash()
                continue
            try:
                await self.execute(item)
            except Exception:  # a bug here must not silently stop the queue
                logging.getLogger(__name__).exception("test server failed executing %s", item.prompt_id)
            if self.running is item:
                self.running = None

    async def execute(self, item: QueueItem) -> None:
        """Run one prompt, sending the messages ComfyUI sends, in its order; identical nodes come from the cache."""
        pid, sid, b, graph = item.prompt_id, item.extra_data.get("client_id"), self.behaviour, item.graph
        failing = b.fail_next > 0 or bool(b.fail_when_text and b.fail_when_text in json.dumps(graph))
        hanging = not failing and b.hang_next > 0
        b.fail_next = max(0, b.fail_next - failing)
        b.hang_next = max(0, b.hang_next - hanging)
        keys = signatures(graph, self.root / "input")
        if failing or hanging:  # a prompt told to fail or hang really runs
            self.cache.clear()
        self.cache = {k: v for k, v in self.cache.items() if k in keys.values()}  # like ComfyUI's clean_unused
        messages: list[list] = []

        def emit(kind: str, data: dict[str, Any], keep: bool = False) -> None:
            self.send(kind, data, sid)
            if keep:
                messages.append([kind, data])

        self.status()
        started = time.perf_counter()
        emit("execution_start", {"prompt_id": pid, "timestamp": now_ms()}, keep=True)
        cached = [n for n in graph if keys[n] in self.cache]
        emit("execution_cached", {"nodes": cached, "prompt_id": pid, "timestamp": now_ms()}, keep=True)
        is_output = lambda n: graph[n]["class_type"] in self.output_classes  # noqa: E731
        order = execution_order(graph, item.outputs, is_output, set(cached))
        runs = [n for n in order if keys[n] not in self.cache]
        work = next((n for n in runs if graph[n]["class_type"] == "KSampler"),
                    next((n for n in runs if any(is_link(v) for v in graph[n].get("inputs", {}).values())),
                         runs[0] if runs else None))
        states: dict[str, dict[str, Any]] = {}
        done: list[str] = []
        outcome, detail = "success", {}
        try:
            effects = self.lora_effects(graph)
            for nid in order:
                if keys[nid] in self.cache:  # served from the cache: no `executing`; `executed` with its UI (or None)
                    if sid is not None:
                        emit("executed", {"node": nid, "display_node": nid, "output": self.cache[keys[nid]],
                                          "prompt_id": pid})
                    self._progress_state(states, nid, pid, "finished", emit)
                    continue
                self._progress_state(states, nid, pid, "running", emit)
                emit("executing", {"node": nid, "display_node": nid, "prompt_id": pid})
                for key in effects[nid].not_loaded if nid in effects else ():
                    self.log_line(f"lora key not loaded: {key}")
                if nid == work:
                    await self._work(item, nid, failing, hanging, emit)
                ui = self._save(item, nid, effects) if is_output(nid) else None
                self.cache[keys[nid]] = ui
                if ui is not None:
                    emit("executed", {"node": nid, "display_node": nid, "output": ui, "prompt_id": pid})
                done.append(nid)
                self._progress_state(states, nid, pid, "finished", emit)
            emit("execution_success", {"prompt_id": pid, "timestamp": now_ms()}, keep=True)
        except Failed as failure:
            outcome = "error"
            node = failure.node or work
            inputs = {k: [str(v)] for k, v in graph[node].get("inputs", {}).items()}
            detail = {"prompt_id": pid, "node_id": node, "node_type": graph[node]["class_type"], "executed": done,
                      "exception_message": failure.message, "exception_type": failure.kind,
                      "traceback": ["  File \"imitation\", in execute\n"], "current_inputs": inputs,
                      "current_outputs": list(graph), "timestamp": now_ms()}
            emit("execution_error", detail, keep=True)
        except Interrupted:
            if self.running is not item:  # the server crashed under this prompt: it vanishes without a trace
                return
            outcome = "error"
            detail = {"prompt_id": pid, "node_id": work, "node_type": graph[work]["class_type"],
                      "executed": done, "timestamp": now_ms()}
            emit("execution_interrupted", detail, keep=True)
        outputs = {n: self.cache[keys[n]] for n in graph if self.cache.get(keys[n]) is not None}
        self.history[pid] = {
            "prompt": item.as_list(), "outputs": outputs,
            "status": {"status_str": outcome, "completed": outcome == "success", "messages": messages},
            "meta": {n: {"node_id": n, "display_node": n, "parent_node": None, "real_node_id": n} for n in outputs},
        }
        self.running = None
        self.status()
        emit("executing", {"node": None, "prompt_id": pid})
        self.log_line(f"Prompt executed in {time.perf_counter() - started:.2f} seconds")

    def _progress_state(self, states: dict, nid: str, pid: str, state: str, emit: Callable) -> None:
        states[nid] = {"value": 1.0 if state == "finished" else 0.0, "max": 1.0, "state": state, "node_id": nid,
                       "prompt_id": pid, "display_node_id": nid, "parent_node_id": None, "real_node_id": nid}
        emit("progress_state", {"prompt_id": pid, "nodes": dict(states)})

    async def _work(self, item: QueueItem, nid: str, failing: bool, hanging: bool, emit: Callable) -> None:
        """The slow node: wait the configured delay (reporting sampler steps), or fail, or hang."""
        if failing:
            raise Failed()
        steps = int(item.graph[nid]["inputs"].get("steps", 1)) if item.graph[nid]["class_type"] == "KSampler" else 0
        wait = None if hanging else self.behaviour.delay
        for step in range(1, max(steps, 1) + 1):
            try:
                await asyncio.wait_for(self.interrupt_flag.wait(), None if wait is None else wait / max(steps, 1))
                raise Interrupted()
            except TimeoutError:
                pass
            if steps:
                emit("progress", {"value": step, "max": steps, "prompt_id": item.prompt_id, "node": nid})

    def _save(self, item: QueueItem, nid: str, effects: dict[str, LoraEffect]) -> dict[str, Any]:
        """The output node's UI answer: SaveVideo's is PreviewVideo's {"images": [mp4], "animated": [true]}."""
        if item.graph[nid]["class_type"] != "SaveVideo":
            return {"images": self._save_images(item, nid, effects)}
        folder, subfolder, name = self._output_folder(str(item.graph[nid]["inputs"].get("filename_prefix", "ComfyUI")), "output")
        key = (folder, name)
        self.counters[key] = self.counters.get(key) or next_counter(folder, name)
        filename = f"{name}_{self.counters[key]:05}_.mp4"
        self.counters[key] += 1
        metadata = {**item.extra_data.get("extra_pnginfo", {}), "prompt": item.graph}
        render_mp4(item.graph, nid, image_size(item.graph, nid, self.root / "input"), folder / filename, metadata)
        return {"images": [{"filename": filename, "subfolder": subfolder, "type": "output"}], "animated": [True]}

    def _output_folder(self, prefix: str, kind: str) -> tuple[Path, str, str]:
        """(folder, subfolder, file name prefix) of a filename_prefix; one escaping output/ falls back to its top."""
        subfolder, _, name = prefix.replace("\\", "/").rpartition("/")
        folder = (self.root / kind / subfolder).resolve()
        if not folder.is_relative_to((self.root / kind).resolve()):
            subfolder, folder = "", self.root / kind
        folder.mkdir(parents=True, exist_ok=True)
        return folder, subfolder, name

    def _save_images(self, item: QueueItem, nid: str, effects: dict[str, LoraEffect]) -> list[dict[str, str]]:
        """Write the node's PNGs like SaveImage (output/) or PreviewImage (temp/); return their refs."""
        node = item.graph[nid]
        kind = "output" if node["class_type"] == "SaveImage" else "temp"
        temp = "ComfyUI_temp_" + "".join(random.choices(string.ascii_lowercase, k=5))  # PreviewImage's random prefix
        prefix = str(node["inputs"].get("filename_prefix", "ComfyUI")) if kind == "output" else temp
        folder, subfolder, name = self._output_folder(prefix, kind)
        refs = []
        count = int(upstream_value(item.graph, nid, "batch_size", 1))
        extra = item.extra_data.get("extra_pnginfo", {})
        size = image_size(item.graph, nid, self.root / "input")
        for i in range(count):
            key = (folder, name)
            self.counters[key] = self.counters.get(key) or next_counter(folder, name)  # scan the folder once
            filename = f"{name}_{self.counters[key]:05}_.png"
            self.counters[key] += 1
            (folder / filename).write_bytes(render_png(item.graph, nid, i, size, extra, effects))
            shown = f"../../{filename}" if self.behaviour.evil_filenames else filename
            refs.append({"filename": shown, "subfolder": subfolder, "type": kind})
        return refs
