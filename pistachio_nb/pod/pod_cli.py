"""`pistachio pod lock | verify | start`: record a pod, compare a pod with its record, make a new pod the recorded one."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import DEFAULT_STATE

DEFAULT_LOCK = "params/pod.lock.yaml"


def _layout(args: argparse.Namespace):
    from .lock import PodLayout

    return PodLayout.of(args.comfy_dir, args.python, args.models_dir)


def _print(table) -> None:
    import pandas as pd

    from ..secrets import scrub

    with pd.option_context("display.max_colwidth", 100, "display.width", 220):
        print(scrub(table.to_string(index=False)))


def cmd_lock(args: argparse.Namespace) -> int:
    from ..paths import resolve
    from .hashcache import HashCache
    from .lock import read_pod, write_lock

    cache = HashCache(args.state_dir / "sha256-cache.json")
    lock = read_pod(_layout(args), cache)
    path = write_lock(resolve(args.lock), lock)
    print(f"locked ComfyUI {lock['comfyui']['commit'][:12]}, {len(lock['custom_nodes'])} custom node(s), "
          f"{len(lock['packages'])} package(s), {len(lock['models'])} model file(s) ({cache.hashed} hashed now) -> {path}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from ..paths import resolve
    from .hashcache import HashCache
    from .lock import read_lock, read_pod
    from .verify import compare, drifted

    table = compare(read_lock(resolve(args.lock)), read_pod(_layout(args), HashCache(args.state_dir / "sha256-cache.json")))
    _print(table)
    bad = drifted(table)
    print(f"{'FAIL: the pod drifted from' if bad else 'ok: the pod matches'} {args.lock}")
    return 1 if bad else 0


def cmd_start(args: argparse.Namespace) -> int:
    from ..paths import resolve
    from .lock import read_lock
    from .start import start_pod

    layout = _layout(args)
    services = None
    if not args.build_only and not args.no_services:
        if not args.params:
            from ..errors import ParamsError

            raise ParamsError("pod start: --params is needed to start the services", fix="--params params/pod.yaml, or --no-services")
        services = _services(args, layout)
    report = start_pod(read_lock(resolve(args.lock)), layout, args.state_dir, mirror=args.mirror,
                       models_volume=args.models_volume, build_only=args.build_only, services=services)
    _print(report.table())
    print("ok: nothing changed" if not report.changed else "ok: the pod matches its lock now")
    return 0


def _services(args: argparse.Namespace, layout):
    """The services step: supervisord with ComfyUI (watchdog), TensorBoard, JupyterLab; then wait for ComfyUI."""
    from urllib.parse import urlsplit

    from ..paths import resolve
    from ..setup_cli import setup_params
    from .supervise import pod_programs, supervise, wait_healthy

    p = setup_params(args)
    programs = pod_programs(resolve(args.params), layout.comfy_dir, layout.python, urlsplit(p.comfy_url).port or 8188,
                            resolve(p.workspace))

    def step() -> str:
        did = supervise(programs, args.state_dir)
        health = wait_healthy(p.comfy_url, args.health_timeout)
        return did if did == "ok" else f"{did}; {health}"
    return step


def add_commands(sub: argparse._SubParsersAction) -> None:
    pod = sub.add_parser("pod", help="lock / verify / start a pod: ComfyUI, custom nodes, packages and models by hash")
    verbs = pod.add_subparsers(dest="pod_command", required=True)
    for name, func, text in (("lock", cmd_lock, "record this pod in a lock file (commit it)"),
                             ("verify", cmd_verify, "compare this pod with the lock; exit 1 on drift"),
                             ("start", cmd_start, "make this pod the locked one and start its services (idempotent)")):
        verb = verbs.add_parser(name, help=text, description=text)
        verb.add_argument("--comfy-dir", type=Path, required=True, help="ComfyUI's git checkout, e.g. /workspace/ComfyUI")
        verb.add_argument("--python", type=Path, default=None, help="the python that runs ComfyUI (default <comfy-dir>/venv/bin/python)")
        verb.add_argument("--models-dir", type=Path, default=None, help="ComfyUI's models folder (default <comfy-dir>/models)")
        verb.add_argument("--lock", default=DEFAULT_LOCK, help=f"the lock file (default {DEFAULT_LOCK})")
        verb.add_argument("--state-dir", type=Path, default=DEFAULT_STATE, help=f"hash cache, start report, supervisor files (default {DEFAULT_STATE})")
        verb.set_defaults(func=func)
        if name == "start":
            verb.add_argument("--mirror", type=Path, default=None, help="folder of local copies (ComfyUI/, <node>/) tried before the remotes")
            verb.add_argument("--models-volume", type=Path, default=None, help="persistent models folder to link ComfyUI's models/ to")
            verb.add_argument("--build-only", action="store_true", help="pins, ComfyUI and nodes only (the Docker build)")
            verb.add_argument("--no-services", action="store_true", help="do not start supervisord (ComfyUI, TensorBoard, JupyterLab)")
            verb.add_argument("--params", default=None, help="params profile for the services (its 00_setup comfy_url and workspace)")
            verb.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one 00_setup parameter")
            verb.add_argument("--health-timeout", type=float, default=300.0, help="seconds to wait for ComfyUI to answer")
