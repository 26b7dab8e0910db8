"""`pistachio` command line: run notebooks, check the environment (and the stage commands added beside)."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from .errors import EnvDriftError, ParamsError, PistachioError, WorkspaceLockedError
from .runner import EXIT_DRIFT, EXIT_FAILED, EXIT_LOCKED, EXIT_OK, EXIT_PARAMS, RunInterruptedError
from .secrets import scrub


def cmd_run(args: argparse.Namespace) -> int:
    from .runner import run_notebooks

    result = run_notebooks(args.notebook, args.params, args.set, runs_root=args.runs_dir, lock_wait_s=args.wait)
    failed = [r for r in result.results if r.status == "failed"]
    print(f"{'FAILED' if failed else 'ok'}: run folder {result.run_dir}")
    return exit_code_for(failed[0].error_type) if failed else EXIT_OK


def cmd_prepare(args: argparse.Namespace) -> int:
    from .runner import prepare_notebooks

    for path in prepare_notebooks(args.notebook, args.params, args.set):
        print(f"prepared {path}")
    print("open these in JupyterLab: the profile's values are in the injected-parameters cell")
    return EXIT_OK


def cmd_check_env(args: argparse.Namespace) -> int:
    from .envcheck import check_env

    drift = check_env(args.pins, fail_on_drift=False)
    if len(drift):
        print(drift.to_string(index=False))
        print(f"drift: {len(drift)} package(s) differ from {args.pins}; fix: pip install -r {args.pins}")
        return EXIT_DRIFT
    print(f"ok: every package matches {args.pins}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pistachio", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one notebook or all of them headless into outputs/runs/")
    run.add_argument("notebook", help="notebook name (e.g. 01_dataset) or 'all'")
    run.add_argument("--params", required=True, help="params profile, e.g. params/demo.yaml")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one parameter (repeatable)")
    run.add_argument("--runs-dir", type=Path, default=None, metavar="DIR",
                     help="where run folders go (default: outputs/runs in the repo)")
    run.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                     help="when another run holds the workspace, wait this long for it (default: refuse at once, exit 75)")
    run.set_defaults(func=cmd_run)

    prep = sub.add_parser("prepare", help="copies of notebooks with a profile's values injected, for JupyterLab")
    prep.add_argument("notebook", help="notebook name (e.g. 03_training) or 'all'")
    prep.add_argument("--params", required=True, help="params profile, e.g. params/pod.yaml")
    prep.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one parameter (repeatable)")
    prep.set_defaults(func=cmd_prepare)

    check = sub.add_parser("check-env", help="compare installed packages with requirements-pinned.txt")
    check.add_argument("--pins", default="requirements-pinned.txt")
    check.set_defaults(func=cmd_check_env)

    for name in COMMAND_MODULES:
        importlib.import_module(name, __package__).add_commands(sub)
    return parser


# Each module adds its own verbs with `add_commands(subparsers)`; it must import only argparse-level
# code at top level (heavy imports inside the handlers) so that `pistachio --help` stays fast.
COMMAND_MODULES = (".setup_cli",)  # health, models, workflows pull, watchdog


# most specific first: the exit code tells cron what went wrong
EXIT_CODES = ((ParamsError, EXIT_PARAMS), (WorkspaceLockedError, EXIT_LOCKED), (EnvDriftError, EXIT_DRIFT),
              (PistachioError, EXIT_FAILED))


def exit_code_for(error_type: str | None) -> int:
    """The exit code of a notebook that failed with exception class `error_type` (by name: it ran in the kernel)."""
    todo, found = [PistachioError], None
    while todo and found is None:
        cls = todo.pop()
        found = cls if cls.__name__ == error_type else None
        todo.extend(cls.__subclasses__())
    return next((code for kind, code in EXIT_CODES if found and issubclass(found, kind)), EXIT_FAILED)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except RunInterruptedError as err:
        print(scrub(f"interrupted: {err}"), file=sys.stderr)
        return 128 + err.signum  # what a shell reports for a process ended by that signal
    except PistachioError as err:
        code = next(code for kind, code in EXIT_CODES if isinstance(err, kind))
        print(scrub(f"{'refused' if code == EXIT_LOCKED else 'error'}: {err}"), file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
