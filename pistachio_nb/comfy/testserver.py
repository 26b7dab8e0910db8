"""A small real HTTP + WebSocket server on 127.0.0.1 that speaks ComfyUI's API (tests and the demo profile).

Routes, JSON shapes, 400 validation errors and WebSocket message order follow the answers recorded
from ComfyUI 0.3.64 (tests/data/comfyui-protocol-samples.json). Built on tornado (already pinned
for Jupyter). `start()` returns (url, stop); `python -m pistachio_nb.comfy.testserver --port N`.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import platform
import shutil
import signal
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import tornado.httpserver
import tornado.netutil
import tornado.web
import tornado.websocket
from PIL import Image

from ..paths import resolve
from .fakeexec import Behaviour, Engine
from .nodecatalog import object_info
from .validation import validate_graph

WORKFLOWS_DIR = Path(__file__).resolve().parent.parent / "workflows"
DEFAULT_MODELS = {"checkpoints": ["tiny-sdxl.safetensors"], "loras": ["character.safetensors"], "vae": []}
STARTUP_TIMEOUT = 10.0


def inside(root: Path, *parts: str) -> Path | None:
    """`root/parts...` if it stays inside root (no `..`, no absolute parts), else None."""
    path = root.joinpath(*parts).resolve()
    return path if path.is_relative_to(root.resolve()) else None


class Handler(tornado.web.RequestHandler):
    @property
    def srv(self) -> ComfyTestServer:
        return self.application.settings["srv"]

    def reply(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def body_json(self) -> Any:
        try:
            return json.loads(self.request.body or b"{}")
        except json.JSONDecodeError:
            return None


class PromptHandler(Handler):
    def get(self) -> None:
        self.reply({"exec_info": {"queue_remaining": self.srv.engine.remaining()}})

    def post(self) -> None:
        body = self.body_json()
        if not isinstance(body, dict) or "prompt" not in body:
            error = {"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided", "extra_info": {}}
            return self.reply({"error": error, "node_errors": {}}, 400)
        graph = body["prompt"]
        verdict = validate_graph(graph, self.srv.object_info())
        if not verdict.ok:
            return self.reply({"error": verdict.error, "node_errors": verdict.node_errors}, 400)
        prompt_id = str(body.get("prompt_id") or uuid.uuid4())
        extra = dict(body.get("extra_data", {}))
        if "client_id" in body:
            extra["client_id"] = body["client_id"]
        number = self.srv.engine.enqueue(prompt_id, graph, extra, verdict.good_outputs)
        self.reply({"prompt_id": prompt_id, "number": number, "node_errors": verdict.node_errors})


class QueueHandler(Handler):
    def get(self) -> None:
        e = self.srv.engine
        self.reply({"queue_running": [e.running.as_list()] if e.running else [],
                    "queue_pending": [i.as_list() for i in e.queue]})

    def post(self) -> None:
        body, e = self.body_json() or {}, self.srv.engine
        if body.get("clear"):
            e.queue.clear()
        drop = set(body.get("delete", []))
        e.queue[:] = [i for i in e.queue if i.prompt_id not in drop]
        self.reply({})


class InterruptHandler(Handler):
    def post(self) -> None:
        body, e = self.body_json() or {}, self.srv.engine
        if e.running and body.get("prompt_id") in (None, e.running.prompt_id):
            e.interrupt_flag.set()
        self.reply({})


class FreeHandler(Handler):
    def post(self) -> None:
        self.reply({})


class HistoryHandler(Handler):
    def get(self, prompt_id: str | None = None) -> None:
        history = self.srv.engine.history
        if prompt_id is not None:
            return self.reply({prompt_id: history[prompt_id]} if prompt_id in history else {})
        self.reply(history)

    def post(self, prompt_id: str | None = None) -> None:
        body, history = self.body_json() or {}, self.srv.engine.history
        if body.get("clear"):
            history.clear()
        for pid in body.get("delete", []):
            history.pop(pid, None)
        self.reply({})


class ViewHandler(Handler):
    def get(self) -> None:
        name = self.get_argument("filename", "")
        kind = self.get_argument("type", "output")
        if self.srv.engine.behaviour.evil_filenames:
            name = Path(name).name
        if not name or name.startswith("/") or ".." in name or kind not in ("output", "input", "temp"):
            raise tornado.web.HTTPError(400)
        path = inside(self.srv.root / kind, self.get_argument("subfolder", ""), name)
        if path is None:
            raise tornado.web.HTTPError(403)
        if not path.is_file():
            raise tornado.web.HTTPError(404)
        self.set_header("Content-Type", "image/png")
        self.set_header("Content-Disposition", f'filename="{name}"')
        self.finish(path.read_bytes())


class UploadHandler(Handler):
    def post(self, what: str) -> None:
        files = self.request.files.get("image")
        if not files:
            raise tornado.web.HTTPError(400)
        upload = files[0]
        kind = self.get_body_argument("type", "input")
        subfolder = self.get_body_argument("subfolder", "")
        overwrite = self.get_body_argument("overwrite", "false").lower() in ("true", "1")
        folder = inside(self.srv.root / kind, subfolder) if kind in ("input", "temp", "output") else None
        name = Path(upload["filename"]).name
        if folder is None or not name:
            raise tornado.web.HTTPError(400)
        folder.mkdir(parents=True, exist_ok=True)
        stem, suffix, i = Path(name).stem, Path(name).suffix, 1
        while (folder / name).exists() and not overwrite:
            name, i = f"{stem} ({i}){suffix}", i + 1
        if what == "mask":
            self._merge_mask(upload["body"], folder / name)
        else:
            (folder / name).write_bytes(upload["body"])
        self.reply({"name": name, "subfolder": subfolder, "type": kind})

    def _merge_mask(self, data: bytes, dest: Path) -> None:
        """Like ComfyUI: the mask image's alpha becomes the alpha of the referenced original image."""
        ref = json.loads(self.get_body_argument("original_ref"))
        original = inside(self.srv.root / ref.get("type", "input"), ref.get("subfolder", ""), ref["filename"])
        if original is None or not original.is_file():
            raise tornado.web.HTTPError(404)
        with Image.open(original) as im, Image.open(io.BytesIO(data)) as mask:
            merged = im.convert("RGBA")
            merged.putalpha(mask.convert("RGBA").getchannel("A").resize(merged.size))
            merged.save(dest, format="PNG")


class ObjectInfoHandler(Handler):
    def get(self, node_class: str | None = None) -> None:
        info = self.srv.object_info()
        if node_class is None:
            return self.reply(info)
        self.reply({node_class: info[node_class]} if node_class in info else {})


class SystemStatsHandler(Handler):
    def get(self) -> None:
        self.reply({
            "system": {"os": "posix", "ram_total": 8 << 30, "ram_free": 6 << 30, "comfyui_version": "0.3.64",
                       "required_frontend_version": "1.27.10", "python_version": sys.version,
                       "pytorch_version": "none (pistachio test server)", "embedded_python": False,
                       "argv": ["pistachio_nb.comfy.testserver", "--port", str(self.srv.port)], "machine": platform.machine()},
            "devices": [{"name": "cpu", "type": "cpu", "index": None, "vram_total": 8 << 30, "vram_free": 6 << 30,
                         "torch_vram_total": 8 << 30, "torch_vram_free": 6 << 30}],
        })


class ModelsHandler(Handler):
    def get(self, folder: str | None = None) -> None:
        if folder is None:
            return self.reply(sorted(self.srv.models))
        if folder not in self.srv.models:
            raise tornado.web.HTTPError(404)
        self.reply(sorted(self.srv.models[folder]))


class UserdataHandler(Handler):
    def get(self, file: str | None = None) -> None:
        base = self.srv.root / "user" / "default"
        if file is None:
            folder = inside(base, self.get_argument("dir", ""))
            if folder is None or not folder.is_dir():
                raise tornado.web.HTTPError(404)
            recurse = self.get_argument("recurse", "false").lower() == "true"
            found = folder.rglob("*") if recurse else folder.glob("*")
            return self.reply(sorted(p.relative_to(folder).as_posix() for p in found if p.is_file()))
        path = inside(base, unquote(file))
        if path is None:
            raise tornado.web.HTTPError(403)
        if not path.is_file():
            raise tornado.web.HTTPError(404)
        self.finish(path.read_bytes())


class WebSocket(tornado.websocket.WebSocketHandler):
    def check_origin(self, origin: str) -> bool:
        return True

    def open(self) -> None:
        srv: ComfyTestServer = self.application.settings["srv"]
        self.set_nodelay(True)  # as aiohttp (ComfyUI) does: small messages go out at once, no Nagle delay
        self.sid = self.get_argument("clientId", "") or uuid.uuid4().hex
        srv.sockets[self.sid] = self
        srv.send("status", {"status": {"exec_info": {"queue_remaining": srv.engine.remaining()}}, "sid": self.sid}, self.sid)

    def on_message(self, message: str | bytes) -> None:
        pass  # ComfyUI accepts client feature flags here; nothing to answer

    def on_close(self) -> None:
        sockets = self.application.settings["srv"].sockets
        if sockets.get(self.sid) is self:
            del sockets[self.sid]


class ComfyTestServer:
    """The server: `start()`, `stop()`, `restart()`; `behaviour` may be changed while it runs."""

    def __init__(self, port: int = 0, root: str | Path | None = None, models: dict[str, list[str]] | None = None,
                 behaviour: Behaviour | None = None, host: str = "127.0.0.1") -> None:
        self._own_root = root is None
        self.root = resolve(root) if root else Path(tempfile.mkdtemp(prefix="comfy-test-")).resolve()
        for sub in ("input", "output", "temp", "user/default/workflows"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for template in WORKFLOWS_DIR.glob("*.json"):  # so /userdata?dir=workflows lists something real
            if not (self.root / "user/default/workflows" / template.name).exists():
                shutil.copyfile(template, self.root / "user/default/workflows" / template.name)
        self.host, self.port = host, port
        self.models = {k: list(v) for k, v in (models or DEFAULT_MODELS).items()}
        self.behaviour = behaviour or Behaviour()
        self.sockets: dict[str, WebSocket] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._http: tornado.httpserver.HTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def object_info(self) -> dict[str, Any]:
        inputs = [p.relative_to(self.root / "input").as_posix() for p in (self.root / "input").rglob("*") if p.is_file()]
        return object_info(self.models, inputs)

    def send(self, kind: str, data: dict[str, Any], sid: str | None) -> None:
        """One WS message to client `sid`, or to every client when sid is None (like ComfyUI's send_sync)."""
        targets = list(self.sockets.values()) if sid is None else [self.sockets[sid]] if sid in self.sockets else []
        text = json.dumps({"type": kind, "data": data})
        for ws in targets:
            try:
                ws.write_message(text)
            except tornado.websocket.WebSocketClosedError:
                pass

    def _app(self) -> tornado.web.Application:
        routes = [
            (r"/ws", WebSocket), (r"/prompt", PromptHandler), (r"/queue", QueueHandler),
            (r"/interrupt", InterruptHandler), (r"/free", FreeHandler), (r"/history", HistoryHandler),
            (r"/history/([^/]+)", HistoryHandler), (r"/view", ViewHandler), (r"/upload/(image|mask)", UploadHandler),
            (r"/object_info", ObjectInfoHandler), (r"/object_info/([^/]+)", ObjectInfoHandler),
            (r"/system_stats", SystemStatsHandler), (r"/models", ModelsHandler), (r"/models/([^/]+)", ModelsHandler),
            (r"/userdata", UserdataHandler), (r"/userdata/(.+)", UserdataHandler),
        ]
        return tornado.web.Application(routes, srv=self, log_function=lambda handler: None)

    def _listen(self) -> None:
        sockets = tornado.netutil.bind_sockets(self.port, self.host)
        self.port = sockets[0].getsockname()[1]
        self._http = tornado.httpserver.HTTPServer(self._app())
        self._http.add_sockets(sockets)

    async def _go_down(self) -> None:
        """Stop listening and cut every connection, like a killed process."""
        self._http.stop()
        for ws in list(self.sockets.values()):
            ws.close()
        self.sockets.clear()
        await self._http.close_all_connections()
        self.engine.reset()

    async def _crash(self, down_seconds: float) -> None:
        await self._go_down()
        await asyncio.sleep(down_seconds)
        self._listen()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self.engine = Engine(self.root, self.behaviour, self.send,
                             lambda: asyncio.ensure_future(self._crash(self.behaviour.restart_seconds)))
        self._listen()
        worker = asyncio.ensure_future(self.engine.run_forever())
        self._ready.set()
        await self._stop.wait()
        worker.cancel()
        await self._go_down()

    def _serve(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        finally:
            self._ready.set()
            self.loop.close()

    def start(self) -> ComfyTestServer:
        """Serve in a background thread; returns once the port accepts connections."""
        self._thread = threading.Thread(target=self._serve, name=f"comfy-test-server-{self.port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(STARTUP_TIMEOUT) or not self._thread.is_alive():
            raise RuntimeError(f"ComfyUI test server did not start on {self.host}:{self.port}")
        return self

    def restart(self, down_seconds: float = 0.5) -> None:
        """Crash now (queue, history and running prompt lost) and come back after `down_seconds`."""
        asyncio.run_coroutine_threadsafe(self._crash(down_seconds), self.loop).result(STARTUP_TIMEOUT)

    def stop(self) -> None:
        """Shut down and wait for the thread; removes the file root only if the server created it."""
        if self._thread and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(STARTUP_TIMEOUT)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ComfyTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(port: int = 0, **kwargs: Any) -> tuple[str, Callable[[], None]]:
    """Start a test server (port 0 = any free port); returns (url, stop)."""
    behaviour = Behaviour(**{k: kwargs.pop(k) for k in list(kwargs) if k in Behaviour.__dataclass_fields__})
    srv = ComfyTestServer(port=port, behaviour=behaviour, **kwargs).start()
    return srv.url, srv.stop


def start_service(**options: Any) -> Callable[[], None]:
    """Runner hook for a profile's `services: comfyui_test_server: {port: N, delay: s}`; returns stop."""
    return start(**options)[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each prompt takes")
    parser.add_argument("--root", default=None, help="folder for input/output/user files (default: a temp folder)")
    args = parser.parse_args(argv)
    srv = ComfyTestServer(port=args.port, host=args.host, root=args.root, behaviour=Behaviour(delay=args.delay)).start()
    print(f"ComfyUI test server on {srv.url} (files in {srv.root}); Ctrl-C to stop", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    srv.stop()


if __name__ == "__main__":
    main()
