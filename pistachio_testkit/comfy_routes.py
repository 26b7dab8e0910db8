"""HTTP and WebSocket handlers of the ComfyUI protocol test server, one per ComfyUI route.

Each answers with the JSON shapes of ComfyUI 0.3.64 (tests/data/comfyui-protocol-samples.json);
the server object behind them (queue, files, models) is `comfy_server.ComfyTestServer`.
"""

from __future__ import annotations

import hashlib
import io
import json
import mimetypes
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import tornado.web
import tornado.websocket
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .comfy_validate import validate_prompt

if TYPE_CHECKING:
    from .comfy_server import ComfyTestServer


INTERNAL_ERROR = "500 Internal Server Error\n\nServer got itself in trouble"  # aiohttp's answer to a handler crash
FOLDERS = ("input", "output", "temp")


def inside(root: Path, *parts: str) -> Path | None:
    """`root/parts...` if it stays inside root (no `..`, no absolute parts), else None."""
    path = root.joinpath(*parts).resolve()
    return path if path.is_relative_to(root.resolve()) else None


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Handler(tornado.web.RequestHandler):
    @property
    def srv(self) -> ComfyTestServer:
        return self.application.settings["srv"]

    def reply(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def empty(self, status: int = 200) -> None:
        """A body-less answer with no content type, as aiohttp's `web.Response(status=...)`."""
        self.set_status(status)
        self.clear_header("Content-Type")
        self.finish()

    def text(self, body: str, status: int) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(body)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors as ComfyUI's handlers give them: empty 4xx bodies, aiohttp's plain-text 500."""
        if status_code >= 500:
            return self.text(INTERNAL_ERROR, status_code)
        self.clear_header("Content-Type")
        self.finish()

    def body_json(self) -> Any:
        """The JSON body; a malformed one is a 500, as ComfyUI's unguarded `await request.json()` makes it."""
        try:
            return json.loads(self.request.body)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise tornado.web.HTTPError(500) from err

    def folders(self) -> dict[str, Path]:
        return {kind: self.srv.root / kind for kind in FOLDERS}


class PromptHandler(Handler):
    def get(self) -> None:
        self.reply({"exec_info": {"queue_remaining": self.srv.engine.remaining()}})

    def post(self) -> None:
        self.srv.engine.log_line("got prompt")  # ComfyUI logs it first, before reading the body
        body, engine = self.body_json(), self.srv.engine
        number = engine.number  # taken by every well-formed POST, rejected or not, as in ComfyUI
        engine.number += 1
        if "number" in body:
            number = float(body["number"])
        elif body.get("front"):
            number = -number
        if "prompt" not in body:
            error = {"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided", "extra_info": {}}
            return self.reply({"error": error, "node_errors": {}}, 400)
        graph = body["prompt"]
        prompt_id = str(body.get("prompt_id") or uuid.uuid4())
        error, node_errors, outputs = validate_prompt(graph, self.srv.object_info(), self.folders())
        if error is not None:
            return self.reply({"error": error, "node_errors": node_errors}, 400)
        extra = dict(body.get("extra_data", {}))
        if "client_id" in body:
            extra["client_id"] = body["client_id"]
        engine.enqueue(number, prompt_id, graph, extra, outputs)
        self.reply({"prompt_id": prompt_id, "number": number, "node_errors": node_errors})


class QueueHandler(Handler):
    def get(self) -> None:
        e = self.srv.engine
        self.reply({"queue_running": [e.running.as_list()] if e.running else [],
                    "queue_pending": [i.as_list() for i in sorted(e.queue, key=lambda i: i.number)]})

    def post(self) -> None:
        body, e = self.body_json(), self.srv.engine
        if body.get("clear"):
            e.queue.clear()
        drop = set(body.get("delete", []))
        e.queue[:] = [i for i in e.queue if i.prompt_id not in drop]
        self.empty()


class InterruptHandler(Handler):
    def post(self) -> None:
        try:
            body = json.loads(self.request.body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = {}
        e = self.srv.engine
        if e.running and (body or {}).get("prompt_id") in (None, e.running.prompt_id):
            e.interrupt_flag.set()
        self.empty()


class FreeHandler(Handler):
    def post(self) -> None:
        self.body_json()
        self.empty()


class HistoryHandler(Handler):
    def get(self, prompt_id: str | None = None) -> None:
        history = self.srv.engine.history
        if prompt_id is not None:
            return self.reply({prompt_id: history[prompt_id]} if prompt_id in history else {})
        self.reply(history)

    def post(self, prompt_id: str | None = None) -> None:
        body, history = self.body_json(), self.srv.engine.history
        if body.get("clear"):
            history.clear()
        for pid in body.get("delete", []):
            history.pop(pid, None)
        self.empty()


def annotated(name: str, folders: dict[str, Path]) -> tuple[str, Path | None]:
    """`x.png [output]` -> ("x.png", output folder); a plain name -> (name, None)."""
    for kind, folder in folders.items():
        if name.endswith(f"[{kind}]"):
            return name[: -len(kind) - 3], folder
    return name, None


class ViewHandler(Handler):
    def get(self) -> None:
        if "filename" not in self.request.arguments:
            return self.empty(404)
        name, folder = annotated(self.get_argument("filename"), self.folders())
        if self.srv.engine.behaviour.evil_filenames:
            name = Path(name).name
        if not name or name.startswith("/") or ".." in name:
            return self.empty(400)
        if folder is None:
            folder = self.folders().get(self.get_argument("type", "output"))
        if folder is None:
            return self.empty(400)
        if "subfolder" in self.request.arguments:
            folder = inside(folder, self.get_argument("subfolder"))
            if folder is None:
                return self.empty(403)
        name = Path(name).name
        path = folder / name
        if not path.is_file():
            return self.empty(404)
        channel = self.get_argument("channel", "rgba")
        data = path.read_bytes()
        if channel in ("rgb", "a"):
            data = channel_png(data, channel)
        kind = "image/png" if channel in ("rgb", "a") else mimetypes.guess_type(name)[0] or "application/octet-stream"
        self.set_header("Content-Type", kind)
        self.set_header("Content-Disposition", f'filename="{name}"')
        self.finish(data)


def channel_png(data: bytes, channel: str) -> bytes:
    """/view's `channel=rgb` (colours only) or `channel=a` (the alpha, as an RGBA image's alpha)."""
    with Image.open(io.BytesIO(data)) as im:
        if channel == "rgb":
            out = im.convert("RGB")
        else:
            out = Image.new("RGBA", im.size)
            out.putalpha(im.getchannel("A") if im.mode == "RGBA" else Image.new("L", im.size, 255))
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    return buf.getvalue()


class UploadHandler(Handler):
    def post(self, what: str) -> None:
        files = self.request.files.get("image")
        if not files or not files[0]["filename"]:
            return self.empty(400)
        upload = files[0]
        kind = self.get_body_argument("type", "input")
        if kind not in FOLDERS:
            raise tornado.web.HTTPError(500)  # ComfyUI's get_dir_by_type fails on an unknown type
        base = (self.srv.root / kind).resolve()
        subfolder = self.get_body_argument("subfolder", "")
        folder = Path(os.path.normpath(base / subfolder))
        name = upload["filename"]
        if not Path(os.path.abspath(folder / name)).is_relative_to(base):
            return self.empty(400)
        folder.mkdir(parents=True, exist_ok=True)
        overwrite = self.get_body_argument("overwrite", "") in ("true", "1")
        stem, suffix, i = os.path.splitext(name)[0], os.path.splitext(name)[1], 1
        duplicate = False
        while not overwrite and (folder / name).exists():
            if file_hash((folder / name).read_bytes()) == file_hash(upload["body"]):
                duplicate = True  # same name, same bytes: ComfyUI keeps the file and answers its name
                break
            name, i = f"{stem} ({i}){suffix}", i + 1
        if not duplicate:
            if what == "mask":
                self._merge_mask(upload["body"], folder / name)
            else:
                (folder / name).write_bytes(upload["body"])
        self.reply({"name": name, "subfolder": subfolder, "type": kind})

    def _merge_mask(self, data: bytes, dest: Path) -> None:
        """The mask image's alpha becomes the alpha of the referenced original; a bad or missing original writes nothing."""
        ref = json.loads(self.get_body_argument("original_ref"))
        name, folder = annotated(ref.get("filename", ""), self.folders())
        if not name or name.startswith("/") or ".." in name:
            return
        folder = folder or self.folders().get(ref.get("type", "output"))
        if folder is not None and ref.get("subfolder", ""):
            folder = inside(folder, ref["subfolder"])
        if folder is None or not (folder / name).is_file():
            return  # ComfyUI answers 200 with the name all the same
        with Image.open(folder / name) as im, Image.open(io.BytesIO(data)) as mask:
            info = PngInfo()
            for key, value in getattr(im, "text", {}).items():
                info.add_text(key, value)
            merged = im.convert("RGBA")
            merged.putalpha(mask.convert("RGBA").getchannel("A"))
            merged.save(dest, format="PNG", compress_level=4, pnginfo=info)


class ObjectInfoHandler(Handler):
    def get(self, node_class: str | None = None) -> None:
        info = self.srv.object_info()
        if node_class is None:
            return self.reply(info)
        self.reply({node_class: info[node_class]} if node_class in info else {})


class SystemStatsHandler(Handler):
    def get(self) -> None:
        memory = {"vram_total": 8 << 30, "vram_free": 6 << 30, "torch_vram_total": 8 << 30, "torch_vram_free": 6 << 30}
        self.reply({
            "system": {"os": os.name, "ram_total": 8 << 30, "ram_free": 6 << 30, "comfyui_version": "0.3.64",
                       "required_frontend_version": "1.27.10", "installed_templates_version": "0.1.95",
                       "required_templates_version": "0.1.95", "python_version": sys.version,
                       "pytorch_version": "none (pistachio imitation)", "embedded_python": False,
                       "argv": ["main.py", "--cpu", "--listen", self.srv.host, "--port", str(self.srv.port)]},
            "devices": [{"name": "cpu", "type": "cpu", "index": None, **memory}],
        })


class ModelsHandler(Handler):
    def get(self, folder: str | None = None) -> None:
        models = self.srv.models()
        if folder is None:
            return self.reply(list(models))
        if folder not in models:
            return self.empty(404)
        self.reply(models[folder])


class UserdataHandler(Handler):
    """ComfyUI's user files of the `default` user: list a folder, read and write one (URL-encoded) file."""

    @property
    def base(self) -> Path:
        return self.srv.root / "user" / "default"

    def get(self, file: str | None = None) -> None:
        if file is None:
            return self._list()
        path = inside(self.base, file)
        if path is None:
            return self.empty(403)
        if not path.exists():
            return self.empty(404)
        self.set_header("Content-Type", mimetypes.guess_type(path.name)[0] or "application/octet-stream")
        self.finish(path.read_bytes())

    def _list(self) -> None:
        directory = self.get_argument("dir", "")
        if not directory:
            return self.text("Directory not provided", 400)
        folder = inside(self.base, directory)
        if folder is None:
            return self.text("Invalid directory", 403)
        if not folder.exists():
            return self.text("Directory not found", 404)
        found = folder.rglob("*") if self.get_argument("recurse", "").lower() == "true" else folder.glob("*")
        self.reply(sorted(p.relative_to(folder).as_posix() for p in found if p.is_file()))

    def post(self, file: str) -> None:
        path = inside(self.base, file)
        if path is None:
            return self.empty(403)
        if self.get_argument("overwrite", "true") == "false" and path.exists():
            return self.text("File already exists", 409)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.request.body)
        self.reply(path.relative_to(self.base).as_posix())


class LogsRawHandler(Handler):
    """GET /internal/logs/raw: the last 300 log entries and the terminal size ComfyUI reports."""

    def get(self) -> None:
        self.reply({"entries": list(self.srv.engine.log), "size": {"cols": TERMINAL[0], "rows": TERMINAL[1]}})


class LogsSubscribeHandler(Handler):
    """PATCH /internal/logs/subscribe {clientId, enabled}: stream each log line to that client's socket (or stop)."""

    def patch(self) -> None:
        body = self.body_json()
        try:
            client_id, enabled = body["clientId"], body["enabled"]
        except (KeyError, TypeError) as err:  # ComfyUI indexes the body unguarded: a 500
            raise tornado.web.HTTPError(500) from err
        if enabled:
            self.srv.engine.log_subscribers.add(client_id)
        else:
            self.srv.engine.log_subscribers.discard(client_id)
        self.empty()


class WebSocket(tornado.websocket.WebSocketHandler):
    def check_origin(self, origin: str) -> bool:
        return True

    def open(self) -> None:
        srv: ComfyTestServer = self.application.settings["srv"]
        self.set_nodelay(True)  # as aiohttp (ComfyUI) does: small messages go out at once, no Nagle delay
        self.sid = self.get_argument("clientId", "") or uuid.uuid4().hex
        self.first_message = True
        srv.sockets[self.sid] = self
        srv.send("status", {"status": {"exec_info": {"queue_remaining": srv.engine.remaining()}}, "sid": self.sid}, self.sid)

    def on_message(self, message: str | bytes) -> None:
        """A first `feature_flags` message is answered with the server's flags, as ComfyUI does."""
        first, self.first_message = self.first_message, False
        try:
            data = json.loads(message)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return
        if first and isinstance(data, dict) and data.get("type") == "feature_flags":
            self.application.settings["srv"].send("feature_flags", SERVER_FEATURES, self.sid)

    def on_close(self) -> None:
        sockets = self.application.settings["srv"].sockets
        if sockets.get(self.sid) is self:
            del sockets[self.sid]


TERMINAL = (80, 24)  # ComfyUI's fallback terminal size without a tty (cols, rows)
SERVER_FEATURES = {"supports_preview_metadata": True, "max_upload_size": 100 * 1024 * 1024}
ROUTES = [
    (r"/ws", WebSocket), (r"/prompt", PromptHandler), (r"/queue", QueueHandler),
    (r"/interrupt", InterruptHandler), (r"/free", FreeHandler), (r"/history", HistoryHandler),
    (r"/history/([^/]+)", HistoryHandler), (r"/view", ViewHandler), (r"/upload/(image|mask)", UploadHandler),
    (r"/object_info", ObjectInfoHandler), (r"/object_info/([^/]+)", ObjectInfoHandler),
    (r"/system_stats", SystemStatsHandler), (r"/models", ModelsHandler), (r"/models/([^/]+)", ModelsHandler),
    (r"/userdata", UserdataHandler), (r"/userdata/([^/]+)", UserdataHandler),
    (r"/internal/logs/raw", LogsRawHandler), (r"/internal/logs/subscribe", LogsSubscribeHandler),
]
