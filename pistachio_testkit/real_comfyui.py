"""Start and stop the real ComfyUI 0.3.64 (installed by `make comfyui`) on a free local port, for tests.

    srv = start()               # temp base dir with input/ output/ models/ custom_nodes/ user/
    srv.url, srv.base_dir, srv.pid
    srv.kill(); srv.restart()   # a crash, then the pod coming back on the same port and folders
    srv.stop()                  # SIGTERM, then SIGKILL; `with start() as srv:` also removes a temp base dir

The install lives outside the project venv (`$COMFYUI_HOME`, default ~/.cache/pistachio/comfyui-0.3.64):
the project's torch cannot run ComfyUI's pins. A missing install raises, naming `make comfyui`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

VERSION = "0.3.64"
START_TIMEOUT = 240.0  # seconds until /system_stats answers; the first start after boot reads ~1 GB of torch
STOP_TIMEOUT = 15.0  # seconds SIGTERM gets before SIGKILL
BASE_FOLDERS = ("input", "output", "temp", "user", "custom_nodes", "models/checkpoints", "models/loras",
                "models/vae", "models/clip", "models/embeddings", "models/upscale_models")


class ComfyInstallMissing(RuntimeError):
    """The real ComfyUI is not installed where the tests look for it."""


class ComfyStartError(RuntimeError):
    """The real ComfyUI did not come up; the message carries its log tail."""


def comfy_home() -> Path:
    """Where `pistachio_testkit/comfyui/install.sh` puts ComfyUI and its venv."""
    default = Path.home() / ".cache" / "pistachio" / f"comfyui-{VERSION}"
    return Path(os.environ.get("COMFYUI_HOME", default)).expanduser()


def _installed(path: Path) -> Path:
    if not (comfy_home() / ".installed").is_file() or not path.exists():
        raise ComfyInstallMissing(f"real ComfyUI {VERSION} is not installed at {comfy_home()} ({path} missing): "
                                  "run `make comfyui` (or set COMFYUI_HOME to an install)")
    return path


def comfy_source() -> Path:
    """The `ComfyUI-0.3.64/` source folder (holds main.py)."""
    return _installed(comfy_home() / f"ComfyUI-{VERSION}")


def comfy_python() -> Path:
    """The python of ComfyUI's own venv (torch 2.14.1 + ComfyUI's pins); run ComfyUI-side scripts with it."""
    return _installed(comfy_home() / "venv" / "bin" / "python")


def free_port() -> int:
    """A port nobody listens on right now (bound once to port 0, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_base_dir(base_dir: Path) -> Path:
    """The folders ComfyUI expects under `--base-directory` (it crashes without `custom_nodes/`)."""
    for sub in BASE_FOLDERS:
        (base_dir / sub).mkdir(parents=True, exist_ok=True)
    return base_dir


def _answers(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/system_stats", timeout=timeout) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class RealComfy:
    """One real ComfyUI process on 127.0.0.1:`port` with its own base directory and log file."""

    base_dir: Path
    port: int
    owns_base_dir: bool = False
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def log_path(self) -> Path:
        return self.base_dir / "comfyui.log"

    def command(self) -> list[str]:
        return [str(comfy_python()), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
                "--base-directory", str(self.base_dir), "--database-url", "sqlite:///:memory:"]

    def launch(self, timeout: float = START_TIMEOUT) -> RealComfy:
        """Start the process (appending to the log) and wait until `/system_stats` answers."""
        if self.process is not None and self.process.poll() is None:
            raise ComfyStartError(f"ComfyUI already running as pid {self.pid} on {self.url}")
        if _answers(self.url, timeout=0.5):
            raise ComfyStartError(f"something already answers on {self.url}")
        make_base_dir(self.base_dir)
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "HF_HUB_OFFLINE": "1",
               "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== pistachio: starting {' '.join(self.command())}\n".encode())
            self.process = subprocess.Popen(self.command(), cwd=comfy_source(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ComfyStartError(f"ComfyUI exited with code {self.process.returncode} before answering on "
                                      f"{self.url}; log tail:\n{self.log_tail()}")
            if _answers(self.url):
                return
            time.sleep(0.2)
        self.kill()
        raise ComfyStartError(f"ComfyUI did not answer {self.url}/system_stats within {timeout:.0f}s; log tail:\n"
                              f"{self.log_tail()}")

    def _signal(self, sig: signal.Signals, timeout: float) -> bool:
        """Send `sig` to the server's pid; True when it has exited within `timeout`."""
        if self.process is None or self.process.poll() is not None:
            return True
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds; the base directory stays for `restart()`."""
        if not self._signal(signal.SIGTERM, timeout):
            self._signal(signal.SIGKILL, timeout)

    def kill(self) -> None:
        """SIGKILL now: a crash as the client sees it (connection refused, queue and history gone)."""
        self._signal(signal.SIGKILL, STOP_TIMEOUT)

    def restart(self, timeout: float = START_TIMEOUT) -> RealComfy:
        """Stop if running, then start again on the same port and base directory."""
        self.stop()
        return self.launch(timeout)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's stdout+stderr."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def close(self) -> None:
        """Stop the server and remove the base directory if `start()` created it."""
        self.stop()
        if self.owns_base_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> RealComfy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start(base_dir: Path | None = None, port: int | None = None, timeout: float = START_TIMEOUT) -> RealComfy:
    """The real ComfyUI up and answering, on `port` (default: a free one) with `base_dir` (default: a temp dir).

    A free port can be taken between finding and binding it; then another is tried (3 tries).
    """
    owns = base_dir is None
    base = Path(tempfile.mkdtemp(prefix="pistachio-comfyui-")) if base_dir is None else Path(base_dir)
    for attempt in range(3):
        srv = RealComfy(base.resolve(), port or free_port(), owns_base_dir=owns)
        try:
            return srv.launch(timeout)
        except ComfyStartError as err:
            lost_race = "address already in use" in str(err).lower()
            if port is not None or not lost_race or attempt == 2:
                raise
    raise AssertionError("unreachable")
