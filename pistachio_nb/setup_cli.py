"""`pistachio health | models | workflows pull | watchdog`: the 00_setup jobs for cron and pod start hooks.

`health` runs the whole 00_setup check (`pistachio_nb.pod.check_pod`: drift, environment, model
downloads, health rows, workflow pull), exactly what the notebook runs; `models` and `workflows pull`
run one step. Each reads the 00_setup values of a params profile (same validation as the notebook) and
exits non-zero when something failed, so `pistachio health --params params/pod.yaml && ...` gates a batch.
`health` and `models` on a profile with `services:` (the demo) start those services for the command, as `run` does.
"""

from __future__ import annotations

import argparse
import signal
import threading
from contextlib import ExitStack

EXIT_OK, EXIT_FAILED = 0, 1
# WatchdogConfig fields the watchdog's flags set (name, type, help); unset flags keep WatchdogConfig's defaults
WATCHDOG_FLAGS = (("poll_interval", float, "seconds between polls"), ("max_failed_polls", int, "unanswered polls = hang"),
                  ("startup_grace", float, "seconds to come up"), ("backoff_max", float, "longest restart delay (s)"))


def setup_params(args: argparse.Namespace, stack: ExitStack | None = None):
    """The validated SetupParams of `--params` (with `--set` overrides); with `stack`, the profile's services run."""
    from .runner import notebook_params

    return notebook_params(args.params, args.set, "00_setup", stack)[0]


def _show(table) -> None:
    """Print a table in full (long `found`/`fix` text kept), with secrets scrubbed."""
    import pandas as pd

    from .secrets import scrub

    with pd.option_context("display.max_colwidth", 120, "display.width", 200):
        print(scrub(table.to_string(index=False)))  # a URL or error detail may carry a credential


def cmd_health(args: argparse.Namespace) -> int:
    """The 00_setup notebook's checks (`check_pod`: same rows, same CSVs under setup/), printed; 1 on any FAIL."""
    from .pod import check_pod

    with ExitStack() as stack:
        report = check_pod(setup_params(args, stack))
    from .health import as_text
    from .secrets import scrub

    _show(report.overview[["step", "rows", "result"]])
    print()
    print(scrub(as_text(report.health)))  # a URL or error detail may carry a credential
    print(report.summary)
    return report.exit_code


def cmd_models(args: argparse.Namespace) -> int:
    from .downloads import ensure_models

    with ExitStack() as stack:
        p = setup_params(args, stack)
        table = ensure_models(p.models_manifest, p.comfy_models_dir)
    _show(table)
    return EXIT_FAILED if (table["status"] == "failed").any() else EXIT_OK


def cmd_workflows_pull(args: argparse.Namespace) -> int:
    from .workflow_convert import pull_workflows

    p = setup_params(args)
    table = pull_workflows(p.comfy_url, args.dest or p.workflows_dir, timeout=p.comfy_timeout_s)
    _show(table)
    if table["bindings"].str.startswith("new scaffold").any():
        print("\nnew bindings files (bindings_file) hold best guesses: check them, above all AMBIGUOUS lines, "
              "before a batch uses their workflow")
    return EXIT_OK


def cmd_watchdog(args: argparse.Namespace) -> int:
    from .watchdog import CRASH_LOG, WatchdogConfig, run_watchdog

    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not command:
        from .errors import ParamsError

        raise ParamsError("watchdog: no command given", fix="pistachio watchdog --params FILE -- python main.py --port 8188")
    p = setup_params(args)
    tuning = {k: getattr(args, k) for k, _, _ in WATCHDOG_FLAGS if getattr(args, k) is not None}
    cfg = WatchdogConfig(url=p.comfy_url, crash_log=p.ws.root / CRASH_LOG, poll_timeout=p.comfy_timeout_s, **tuning)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run_watchdog(command, cfg, stop)
    return EXIT_OK


def _profile_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", required=True, help="params profile, e.g. params/pod.yaml (its 00_setup values)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one 00_setup parameter")


def add_commands(sub) -> None:
    """Register the 00_setup subcommands on the `pistachio` parser's subparsers."""
    health = sub.add_parser("health", help="the 00_setup checks (downloads, workflow pull, health table); exit 1 on any FAIL")
    _profile_args(health)
    health.set_defaults(func=cmd_health)

    models = sub.add_parser("models", help="download / verify the models manifest; exit code 1 if any failed")
    _profile_args(models)
    models.set_defaults(func=cmd_models)

    workflows = sub.add_parser("workflows", help="workflows under version control")
    pull = workflows.add_subparsers(dest="workflows_command", required=True).add_parser(
        "pull", help="copy ComfyUI's saved workflows (their API form + a scaffold bindings file) into workflows_dir")
    _profile_args(pull)
    pull.add_argument("--dest", help="folder to write into (default: workflows_dir from the profile)")
    pull.set_defaults(func=cmd_workflows_pull)

    watch = sub.add_parser("watchdog", help="run ComfyUI, restart it on exit or hang, log crashes",
                           usage="pistachio watchdog --params FILE [options] -- COMMAND ...")
    _profile_args(watch)
    for name, kind, text in WATCHDOG_FLAGS:
        watch.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help=f"{text} (default: WatchdogConfig's)")
    watch.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the ComfyUI command")
    watch.set_defaults(func=cmd_watchdog)
