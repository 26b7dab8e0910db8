"""HTTP and WebSocket handlers of the ComfyUI protocol test server, one per ComfyUI route.

Each answers with the JSON shapes of ComfyUI 0.3.64 (tests/data/comfyui-protocol-samples.json);
the server object behind them (queue, files, models) is `comfy_server.ComfyTestServer`.
"""

from __future__ import annotations

import io
import json
import platform
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import tornado.web
import tornado.websocket
from PIL import Image

from pistachio_nb.comfy.validation import validate_graph

if TYPE_CHECKING:
    from .comfy_server import ComfyTestServer


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
                       "argv": ["pistachio_testkit.comfy_server", "--port", str(self.srv.port)], "machine": platform.machine()},
            "devices": [{"name": "cpu", "type": "cpu", "index": None, "vram_total": 8 << 30, "vram_free": 6 << 30,
                         "torch_vram_total": 8 << 30, "torch_vram_free": 6 << 30}],
        })


class ModelsHandler(Handler):
    def get(self, folder: str | None = None) -> None:
        models = self.srv.models()
        if folder is None:
            return self.reply(sorted(models))
        if folder not in models:
            raise tornado.web.HTTPError(404)
        self.reply(models[folder])


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


ROUTES = [
    (r"/ws", WebSocket), (r"/prompt", PromptHandler), (r"/queue", QueueHandler),
    (r"/interrupt", InterruptHandler), (r"/free", FreeHandler), (r"/history", HistoryHandler),
    (r"/history/([^/]+)", HistoryHandler), (r"/view", ViewHandler), (r"/upload/(image|mask)", UploadHandler),
    (r"/object_info", ObjectInfoHandler), (r"/object_info/([^/]+)", ObjectInfoHandler),
    (r"/system_stats", SystemStatsHandler), (r"/models", ModelsHandler), (r"/models/([^/]+)", ModelsHandler),
    (r"/userdata", UserdataHandler), (r"/userdata/(.+)", UserdataHandler),
]
