"""The pod's long-running services under one supervisord: written as a config, started once, updated after.

supervisord (pinned) restarts a service that exits; ComfyUI also runs under `pistachio watchdog`, which restarts
it when it hangs and logs each crash for health. A second `pod start` with the same config changes nothing.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from ..errors import PistachioError
from ..files import write_text

SUPERVISOR_TIMEOUT_S = 60


class SupervisorError(PistachioError, RuntimeError):
    """supervisord did not start or update; the message has its output and log path."""


@dataclass(frozen=True)
class Program:
    command: list[str]
    directory: Path


def bin_path(name: str) -> str:
    """A console script of this environment (supervisord, tensorboard, pistachio), found beside the interpreter."""
    return str(Path(sys.executable).with_name(name))


def pod_programs(params_file: Path, comfy_dir: Path, comfy_python: Path, port: int, workspace: Path) -> dict[str, Program]:
    """ComfyUI under the watchdog, TensorBoard on the training logs, JupyterLab (as `pistachio lab`)."""
    pistachio, here = bin_path("pistachio"), Path.cwd()
    return {
        "comfyui": Program([pistachio, "watchdog", "--params", str(params_file), "--", str(comfy_python), "main.py",
                            "--listen", "0.0.0.0", "--port", str(port)], comfy_dir),
        "tensorboard": Program([bin_path("tensorboard"), "--logdir", str(workspace / "lora"), "--host", "0.0.0.0",
                                "--port", "6006"], here),
        "jupyterlab": Program([pistachio, "lab"], here),
    }


def config_text(programs: dict[str, Program], state_dir: Path) -> str:
    """supervisord.conf: a private socket (0700), logs under the state folder, each program in its own group."""
    lines = [
        "[unix_http_server]", f"file={state_dir / 'supervisor.sock'}", "chmod=0700", "",
        "[supervisord]", f"logfile={state_dir / 'supervisord.log'}", f"pidfile={state_dir / 'supervisord.pid'}",
        f"childlogdir={state_dir / 'logs'}", "", "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
        "[supervisorctl]", f"serverurl=unix://{state_dir / 'supervisor.sock'}", "",
    ]
    for name, prog in sorted(programs.items()):
        lines += [f"[program:{name}]", f"command={shlex.join(prog.command)}", f"directory={prog.directory}",
                  "autorestart=true", "startsecs=3", "stopasgroup=true", "killasgroup=true", "stopwaitsecs=30",
                  f"stdout_logfile={state_dir / 'logs' / (name + '.log')}", "redirect_stderr=true", ""]
    return "\n".join(lines)


def _running(state_dir: Path) -> bool:
    try:
        os.kill(int((state_dir / "supervisord.pid").read_text().strip()), 0)
    except (OSError, ValueError):
        return False
    return True


def _ctl(conf: Path, *args: str) -> str:
    done = subprocess.run([bin_path("supervisorctl"), "-c", str(conf), *args], capture_output=True, text=True,
                          timeout=SUPERVISOR_TIMEOUT_S)
    return done.stdout + done.stderr


def supervise(programs: dict[str, Program], state_dir: Path) -> str:
    """Start supervisord with these programs, or apply a changed config to the running one; "ok" if nothing changed."""
    (state_dir / "logs").mkdir(parents=True, exist_ok=True)
    conf = state_dir / "supervisord.conf"
    text = config_text(programs, state_dir)
    unchanged = conf.is_file() and conf.read_text() == text
    if _running(state_dir):
        if unchanged:
            return "ok"
        write_text(conf, text)
        out = _ctl(conf, "update")
        return f"updated: {' '.join(out.split())[:200] or 'no change'}"
    write_text(conf, text)
    done = subprocess.run([bin_path("supervisord"), "-c", str(conf)], capture_output=True, text=True, timeout=SUPERVISOR_TIMEOUT_S)
    deadline = time.monotonic() + 10
    while done.returncode == 0 and not _running(state_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    if done.returncode or not _running(state_dir):
        raise SupervisorError(f"supervisord did not start: {(done.stdout + done.stderr).strip()[-400:]}",
                              fix=f"see {state_dir / 'supervisord.log'}")
    return f"started supervisord: {', '.join(sorted(programs))}"


def stop_supervisor(state_dir: Path) -> None:
    """Stop supervisord and its programs (tests; on a pod the container's end does it)."""
    if _running(state_dir):
        _ctl(state_dir / "supervisord.conf", "shutdown")
        deadline = time.monotonic() + 30
        while _running(state_dir) and time.monotonic() < deadline:
            time.sleep(0.1)


def wait_healthy(url: str, timeout_s: float) -> str:
    """Poll ComfyUI's /system_stats until it answers; a start that never gets healthy is a failed start."""
    deadline, t0 = time.monotonic() + timeout_s, time.monotonic()
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url.rstrip('/')}/system_stats", timeout=(3.05, 5)).ok:
                return f"ComfyUI answers at {url} after {time.monotonic() - t0:.1f} s"
        except requests.RequestException:
            pass
        time.sleep(1.0)
    raise SupervisorError(f"ComfyUI at {url} did not answer within {timeout_s:.0f} s", fix="see the comfyui log under the state folder")
