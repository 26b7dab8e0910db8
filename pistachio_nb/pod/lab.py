"""`pistachio lab`: JupyterLab on the pod's conventions (port 8888, all interfaces, root allowed, token from the env).

On RunPod a JupyterLab already runs on 8888: open it and pick the "Pistachio (.venv)" kernel that
`make setup` registers; this command is for pods (or laptops) without one. The token comes from
`JUPYTER_TOKEN` (or RunPod's `JUPYTER_PASSWORD`) through the environment, never the command line,
where `ps` would show it.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from ..errors import PistachioError
from ..paths import repo_root

LAB_PORT = 8888
TOKEN_VARS = ("JUPYTER_TOKEN", "JUPYTER_PASSWORD")  # jupyter_server reads the first; RunPod sets the second


class LabError(PistachioError, RuntimeError):
    """JupyterLab cannot start here: the port is taken (often by the pod's own JupyterLab) or no token is set."""


def lab_token(environ: dict[str, str]) -> str | None:
    """The token from the first of JUPYTER_TOKEN, JUPYTER_PASSWORD that is set."""
    return next((environ[k] for k in TOKEN_VARS if environ.get(k, "").strip()), None)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def lab_command(port: int, ip: str, root_dir: Path) -> list[str]:
    """The `jupyter lab` command of this environment (its kernels, its packages)."""
    jupyter = Path(sys.executable).with_name("jupyter")
    return [str(jupyter), "lab", f"--ServerApp.port={port}", f"--ServerApp.ip={ip}", "--ServerApp.allow_root=True",
            "--ServerApp.open_browser=False", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root_dir}"]


def start_lab(port: int = LAB_PORT, ip: str = "0.0.0.0", root_dir: Path | None = None) -> None:
    """Replace this process with JupyterLab; refuses when the port is taken or no token is in the environment."""
    if port_in_use(port):
        raise LabError(f"port {port} is in use: a JupyterLab (the pod's own?) or another server listens there",
                       fix="open that JupyterLab and pick the 'Pistachio (.venv)' kernel, or pass --port")
    token = lab_token(dict(os.environ))
    if token is None:
        raise LabError("no JupyterLab token in the environment: anyone reaching the port could run code",
                       fix="put JUPYTER_TOKEN=... in ~/.config/pistachio/env (chmod 600), or export it")
    command = lab_command(port, ip, root_dir or repo_root())
    print(f"starting JupyterLab on {ip}:{port} in {root_dir or repo_root()} (token from the environment)", flush=True)
    os.execve(command[0], command, {**os.environ, "JUPYTER_TOKEN": token})
