"""A small real HTTP + WebSocket server on 127.0.0.1 that speaks ComfyUI's API (tests and the demo profile).

Routes, JSON shapes, 400 validation errors and WebSocket message order follow the answers recorded
from ComfyUI 0.3.64 (tests/data/comfyui-protocol-samples.json). Built on tornado (already pinned
for Jupyter). `start()` returns (url, stop); `python -m pistachio_testkit.comfy_server --port N`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web
import tornado.websocket

import pistachio_nb
from pistachio_nb.paths import resolve

from .comfy_exec import Behaviour, Engine
from .comfy_nodes import input_images, object_info
from .comfy_routes import ROUTES, WebSocket

WORKFLOWS_DIR = Path(pistachio_nb.__file__).resolve().parent / "workflows"
DEFAULT_MODELS = {"checkpoints": ["tiny-sdxl.safetensors"], "loras": ["character.safetensors"]}
PT = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
# ComfyUI's folder_names_and_paths (folder_paths.py): name -> (folders under models/, suffixes; empty = any file)
MODEL_FOLDERS: dict[str, tuple[tuple[str, ...], set[str]]] = {
    "checkpoints": (("checkpoints",), PT), "configs": (("configs",), {".yaml"}), "loras": (("loras",), PT),
    "vae": (("vae",), PT), "text_encoders": (("text_encoders", "clip"), PT),
    "diffusion_models": (("unet", "diffusion_models"), PT), "clip_vision": (("clip_vision",), PT),
    "style_models": (("style_models",), PT), "embeddings": (("embeddings",), PT), "diffusers": (("diffusers",), {"folder"}),
    "vae_approx": (("vae_approx",), PT), "controlnet": (("controlnet", "t2i_adapter"), PT), "gligen": (("gligen",), PT),
    "upscale_models": (("upscale_models",), PT), "custom_nodes": (("../custom_nodes",), set()),
    "hypernetworks": (("hypernetworks",), PT), "photomaker": (("photomaker",), PT), "classifiers": (("classifiers",), {""}),
    "model_patches": (("model_patches",), PT), "audio_encoders": (("audio_encoders",), PT),
}
STARTUP_TIMEOUT = 10.0


class ComfyTestServer:
    """The server: `start()`, `stop()`, `restart()`; `behaviour` may be changed while it runs."""

    def __init__(self, port: int = 0, root: str | Path | None = None, models: dict[str, list[str]] | None = None,
                 behaviour: Behaviour | None = None, host: str = "127.0.0.1", workflows: bool = True) -> None:
        self._own_root = root is None
        self.root = resolve(root) if root else Path(tempfile.mkdtemp(prefix="comfy-test-")).resolve()
        for sub in ("input", "output", "temp", "user/default/workflows"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for template in WORKFLOWS_DIR.glob("*.json") if workflows else []:  # so /userdata?dir=workflows lists something
            if not (self.root / "user/default/workflows" / template.name).exists():
                shutil.copyfile(template, self.root / "user/default/workflows" / template.name)
        self.host, self.port = host, port
        self.models_root = self.root / "models"
        for folder, names in (DEFAULT_MODELS if models is None else models).items():
            for name in names:  # never loaded by the imitation; like real ComfyUI, it lists only files that exist
                if not (self.models_root / folder / name).exists():
                    (self.models_root / folder / name).parent.mkdir(parents=True, exist_ok=True)
                    (self.models_root / folder / name).write_bytes(b"")
        self.behaviour = behaviour or Behaviour()
        self.sockets: dict[str, WebSocket] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._http: tornado.httpserver.HTTPServer | None = None
        self._error: Exception | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def models(self) -> dict[str, list[str]]:
        """Folder -> model files below `models/<folder>` (subfolders as `a/b.safetensors`), as ComfyUI lists them."""
        found = {}
        for name, (folders, suffixes) in MODEL_FOLDERS.items():
            files = set()
            for base in (self.models_root / f for f in folders):
                files |= {p.relative_to(base).as_posix() for p in (base.rglob("*") if base.is_dir() else [])
                          if p.is_file() and (not suffixes or p.suffix.lower() in suffixes)}
            found[name] = sorted(files)
        return found

    def object_info(self) -> dict[str, Any]:
        return object_info(self.models(), input_images(self.root / "input"))

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
        return tornado.web.Application(ROUTES, srv=self, log_function=lambda handler: None)

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
        except Exception as err:  # e.g. the port is taken by another run's server: start() reports it
            self._error = err
        finally:
            self._ready.set()
            self.loop.close()

    def start(self) -> ComfyTestServer:
        """Serve in a background thread; returns once the port accepts connections."""
        self._thread = threading.Thread(target=self._serve, name=f"comfy-test-server-{self.port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(STARTUP_TIMEOUT) or self._error is not None:
            raise RuntimeError(f"ComfyUI test server did not start on {self.host}:{self.port}: {self._error}")
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
