"""`pistachio` command line: run the notebooks headless, check the pod, and the stage commands.

Only argparse-level code at top level: the runner (nbformat, papermill) loads inside the handlers, so
`pistachio --help` answers in well under a second.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import textwrap
from contextlib import ExitStack
from pathlib import Path

from .errors import EnvDriftError, ParamsError, PistachioError, WorkspaceLockedError
from .secrets import scrub


def cmd_run(args: argparse.Namespace) -> int:
    from .runner import EXIT_OK, run_notebooks

    result = run_notebooks(args.notebook, args.params, args.set, runs_root=args.runs_dir, lock_wait_s=args.wait,
                           gate=args.gate)
    failed = [r for r in result.results if r.status == "failed"]
    print(f"{'FAILED' if failed else 'ok'}: run folder {result.run_dir}")
    return exit_code_for(failed[0].error_type) if failed else EXIT_OK


def cmd_prepare(args: argparse.Namespace) -> int:
    from .runner import EXIT_OK, prepare_notebooks

    for path in prepare_notebooks(args.notebook, args.params, args.set):
        print(f"prepared {path}")
    print("open these in JupyterLab: the profile's values are in the injected-parameters cell")
    return EXIT_OK


def cmd_check_env(args: argparse.Namespace) -> int:
    from .envcheck import check_env
    from .runner import EXIT_DRIFT, EXIT_OK

    drift = check_env(args.pins, fail_on_drift=False)
    if len(drift):
        print(drift.to_string(index=False))
        print(f"drift: {len(drift)} package(s) differ from {args.pins}; fix: pip install -r {args.pins}")
        return EXIT_DRIFT
    print(f"ok: every package matches {args.pins}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pistachio", description=textwrap.fill(DESCRIPTION, 100), epilog=epilog(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one notebook or all of them headless into outputs/runs/")
    run.add_argument("notebook", help="notebook name (e.g. 01_dataset) or 'all'")
    run.add_argument("--params", required=True, help="params profile, e.g. params/demo.yaml")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one parameter (repeatable)")
    run.add_argument("--runs-dir", type=Path, default=None, metavar="DIR",
                     help="where run folders go (default: outputs/runs in the repo)")
    run.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                     help="when another run holds the workspace, wait this long for it (default: refuse at once, exit 75)")
    run.add_argument("--gate", choices=["health"], default=None,
                     help="health: run the 00_setup checks first and refuse the run (exit 1) on any FAIL row")
    run.add_argument("--log", type=Path, default=None, metavar="FILE",
                     help="also append everything printed (progress, health table, errors) to FILE, e.g. for cron")
    run.set_defaults(func=cmd_run)

    prep = sub.add_parser("prepare", help="copies of notebooks with a profile's values injected, for JupyterLab")
    prep.add_argument("notebook", help="notebook name (e.g. 03_training) or 'all'")
    prep.add_argument("--params", required=True, help="params profile, e.g. params/pod.yaml")
    prep.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one parameter (repeatable)")
    prep.set_defaults(func=cmd_prepare)

    check = sub.add_parser("check-env", help="compare installed packages with requirements-pinned.txt")
    check.add_argument("--pins", default="requirements-pinned.txt", metavar="FILE",
                       help="the pinned requirements to compare with (default: requirements-pinned.txt)")
    check.set_defaults(func=cmd_check_env)

    for name in COMMAND_MODULES:
        importlib.import_module(name, __package__).add_commands(sub)
    return parser


# Each module adds its own verbs with `add_commands(subparsers)`; it must import only argparse-level
# code at top level (heavy imports inside the handlers) so that `pistachio --help` stays fast.
COMMAND_MODULES = (".setup_cli", ".serve.cli", ".comfy.cli", ".knowledge.cli", ".pod.pod_cli", ".pod.cli", ".training.lora_cli")  # health, models, workflows pull, watchdog; serve; publish-lora; knowledge apply/skills; pod lock/verify/start; lab; lora resize/merge


DESCRIPTION = ("Run the Pistachio notebooks headless (cron, pod start hooks) or prepare them for JupyterLab, "
               "and check the pod. Each notebook is one stage of the pipeline; a run renders every notebook "
               "and its HTML into a run folder.")

# what each exit code means, for cron; a test keeps these numbers equal to the runner's EXIT_* constants
EXIT_TABLE = ((0, "ok"), (1, "a notebook or check failed (the rendered notebook shows the failing cell)"),
              (2, "bad parameters or profile: nothing ran"), (3, "installed packages differ from the pins"),
              (75, "another run holds the workspace: retry later, or pass --wait SECONDS"),
              (143, "stopped by SIGTERM (128 + the signal number; 130 for Ctrl-C)"))

EXAMPLES = ("pistachio run all --params params/demo.yaml",
            "pistachio health --params params/pod.yaml && pistachio run 06_batch_generation --params params/pod.yaml")


def notebook_titles() -> list[tuple[str, str]]:
    """(name, title) of every notebook, read as plain JSON (nbformat's validator costs seconds to import)."""
    from .paths import repo_root

    out = []
    for path in sorted((repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        first = "".join(json.loads(path.read_text(encoding="utf-8"))["cells"][0]["source"]).splitlines()[0]
        out.append((path.stem, first.lstrip("# ").split("·", 1)[-1].split(":", 1)[0].strip()))
    return out


def epilog() -> str:
    """The help's closing text: the notebooks, the exit codes, two examples."""
    lines = ["notebooks (NAME for run/prepare; 'all' runs them in this order):"]
    lines += [f"  {name:<22}{title}" for name, title in notebook_titles()]
    lines += ["", "exit codes:"] + [f"  {code:<5}{meaning}" for code, meaning in EXIT_TABLE]
    lines += ["", "examples:"] + [f"  {example}" for example in EXAMPLES]
    return "\n".join(lines)


def exit_codes() -> tuple:
    """Error kind -> exit code, most specific first: the exit code tells cron what went wrong."""
    from .runner import EXIT_DRIFT, EXIT_FAILED, EXIT_LOCKED, EXIT_PARAMS

    return ((ParamsError, EXIT_PARAMS), (WorkspaceLockedError, EXIT_LOCKED), (EnvDriftError, EXIT_DRIFT),
            (PistachioError, EXIT_FAILED))


def exit_code_for(error_type: str | None) -> int:
    """The exit code of a notebook that failed with exception class `error_type` (by name: it ran in the kernel)."""
    todo, found = [PistachioError], None
    while todo and found is None:
        cls = todo.pop()
        found = cls if cls.__name__ == error_type else None
        todo.extend(cls.__subclasses__())
    return next((code for kind, code in exit_codes() if found and issubclass(found, kind)), exit_codes()[-1][1])


def main(argv: list[str] | None = None) -> int:
    """Parse, load the owner-only env file (secrets for cron), run the verb; `--log FILE` copies all output there."""
    from .envfile import load_env_file
    from .progress import tee_output

    args = build_parser().parse_args(argv)
    from .runner import EXIT_LOCKED, RunInterruptedError  # after parsing: `--help` never loads the runner
    with ExitStack() as stack:
        if getattr(args, "log", None):
            stack.enter_context(tee_output(args.log, "pistachio " + " ".join(sys.argv[1:] if argv is None else argv)))
        try:
            load_env_file()
            return args.func(args)
        except RunInterruptedError as err:
            print(scrub(f"interrupted: {err}"), file=sys.stderr)
            return 128 + err.signum  # what a shell reports for a process ended by that signal
        except PistachioError as err:
            code = next(code for kind, code in exit_codes() if isinstance(err, kind))
            print(scrub(f"{'refused' if code == EXIT_LOCKED else 'error'}: {err}"), file=sys.stderr)
            return code


if __name__ == "__main__":
    sys.exit(main())
