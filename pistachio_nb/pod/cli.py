"""`pistachio lab`: start JupyterLab the way a pod expects it (see `pistachio_nb.pod.lab`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_lab(args: argparse.Namespace) -> int:
    from .lab import start_lab

    start_lab(args.port, args.ip, args.root_dir)
    return 0  # not reached: JupyterLab replaced this process


def add_commands(sub: argparse._SubParsersAction) -> None:
    lab = sub.add_parser("lab", help="JupyterLab on port 8888, root allowed, token from JUPYTER_TOKEN (or JUPYTER_PASSWORD)")
    lab.add_argument("--port", type=int, default=8888, help="port (default 8888, the pod's JupyterLab port)")
    lab.add_argument("--ip", default="0.0.0.0", help="address to listen on (default: all, for the pod's proxy)")
    lab.add_argument("--root-dir", type=Path, default=None, help="folder the file browser starts in (default: the repo)")
    lab.set_defaults(func=cmd_lab)
