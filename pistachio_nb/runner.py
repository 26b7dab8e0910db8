"""Run notebooks headless with papermill into a run folder: validate first, lock, render, summarise.

`run_notebooks` is the one public entry; the small functions below it each do one step.
"""

from __future__ import annotations

import fcntl
import glob
import importlib
import json
import os
import signal
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import nbformat

from .errors import ParamsError, PistachioError, ServiceError, WorkspaceLockedError
from .files import write_json, write_text
from .gitguard import check_params_outside_git
from .params import NotebookParams
from .paths import repo_root, resolve
from .procgroup import signal_group, stop_groups
from .progress import NotebookProgress, notebook_progress
from .profiles import Profile, did_you_mean, load_profile, parse_sets, resolve_values
from .render import render_html, write_index
from .secrets import scrub, scrub_data

EXIT_OK, EXIT_FAILED, EXIT_PARAMS, EXIT_DRIFT, EXIT_LOCKED = 0, 1, 2, 3, 75
LOCK_NAME = ".pistachio-run.lock"
LOCK_POLL_SECONDS = 0.5


@dataclass
class NotebookResult:
    notebook: str
    status: str = "pending"  # ok | failed | skipped | interrupted
    seconds: float = 0.0
    error: str | None = None
    error_type: str | None = None  # the failing cell's exception class, e.g. EnvDriftError (gives the exit code)
    rendered: str | None = None
    html: str | None = None
    missing_artifacts: list[str] = field(default_factory=list)


@dataclass
class RunResult:
    run_dir: Path
    results: list[NotebookResult]

    @property
    def ok(self) -> bool:
        return all(r.status == "ok" for r in self.results)


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"


def select_notebooks(target: str) -> list[Path]:
    """`all` -> every notebook in workflow order; otherwise one notebook by name, or a path to one."""
    if target == "all":
        found = sorted(Path(p) for p in glob.glob(str(notebooks_dir() / "[0-9][0-9]_*.ipynb")))
        if not found:
            raise ParamsError(f"no notebooks found in {notebooks_dir()}")
        return found
    if target.endswith(".ipynb") and Path(target).is_file():
        return [Path(target).resolve()]
    name = Path(target).name
    path = notebooks_dir() / (name if name.endswith(".ipynb") else f"{name}.ipynb")
    if not path.is_file():
        known = ", ".join(p.stem for p in select_notebooks("all"))
        raise ParamsError(f"no notebook named {target!r}", fix=f"choose one of: all, {known}")
    return [path]


def validate_run(notebooks: list[Path], profile: Profile, sets: dict[str, Any], provided: dict[str, Any] | None = None,
                 check_paths: bool = True) -> list[tuple[Path, dict, NotebookParams]]:
    """Validate every notebook's values before anything runs, so a typo fails in a second, not an hour in.

    Input files and folders are checked too, unless `check_paths` is off (before services give their paths).
    """
    strict = len(notebooks) == 1
    plans = [(nb, *resolve_values(nb, profile, sets, strict_sets=strict, provided=provided, check_paths=check_paths))
             for nb in notebooks]
    used = {k for _, inject, _ in plans for k in inject}
    unused = [k for k in sets if k not in used]
    if unused:
        raise ParamsError(f"--set {unused[0]}: unknown parameter {unused[0]!r}: no notebook in this run has it",
                          fix=did_you_mean(unused[0], {nb.stem: set(type(params).model_fields) for nb, _, params in plans}))
    for _, _, params in plans:  # personal data inside the clone is refused before any work
        check_params_outside_git(params, check_inputs=check_paths)
    return plans


@contextmanager
def workspace_lock(workspace: Path, wait_s: float = 0.0) -> Iterator[Path]:
    """Hold an exclusive lock on the workspace; a concurrent run waits up to `wait_s`, then refuses."""
    workspace.mkdir(parents=True, exist_ok=True)
    lock_path = workspace / LOCK_NAME
    handle = lock_path.open("a+")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(LOCK_POLL_SECONDS)
                continue
            handle.seek(0)
            holder = handle.read().strip() or "another run"
            handle.close()
            raise WorkspaceLockedError(
                f"workspace {workspace} is in use by {holder}",
                fix="wait for that run to finish (or pass --wait SECONDS); the lock frees itself when it exits",
            ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} since {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC")
    handle.flush()
    try:
        yield lock_path
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def service_starters(services: dict[str, Any]) -> dict[str, tuple[Callable[..., Any], dict[str, Any]]]:
    """Load each profile service's `start: module:function` before anything starts; bad entries name themselves."""
    starters = {}
    for name, options in services.items():
        options = dict(options or {})
        target = options.pop("start", None)
        if not isinstance(target, str) or target.count(":") != 1:
            raise ParamsError(f"services: {name}: 'start' must name a starter as module:function, got {target!r}",
                              fix="e.g. start: pistachio_testkit.services:comfyui_imitation")
        module, func = target.split(":")
        try:
            starters[name] = (getattr(importlib.import_module(module), func), options)
        except (ImportError, AttributeError) as err:
            raise ParamsError(f"services: {name}: cannot load {target}: {err}",
                              fix="run `make setup` (it installs pistachio_testkit), or fix the name") from None
    return starters


def start_services(services: dict[str, Any], workspace: Path, stack: ExitStack) -> dict[str, Any]:
    """Start the profile's services (the demo world); returns the values they provide, e.g. a server's URL.

    A starter is called as `start(workspace=..., **options)` and returns `(values, stop)`; servers
    bind free ports, so runs side by side never collide. Each stop runs when the run ends.
    """
    provided: dict[str, Any] = {}
    for name, (start, options) in service_starters(services).items():
        try:
            values, stop = start(workspace=workspace, **options)
        except (OSError, RuntimeError) as err:
            raise ServiceError(f"services: {name} did not start: {err}",
                               fix="see the message; services are started fresh for every run") from err
        stack.callback(stop)
        provided.update(values)
    return provided


def notebook_params(params_file: str | Path, sets: list[str] | None, notebook: str, stack: ExitStack | None = None,
                    lock: bool = True) -> tuple[Any, Profile]:
    """One notebook's validated params from a profile and `--set` overrides, as the notebook would get them.

    With `stack`, the profile's services (the demo world) start first, under the workspace lock when `lock`,
    and stop when the stack closes; the values they provide (e.g. comfy_url) fill the params.
    """
    nb, profile, overrides = select_notebooks(notebook)[0], load_profile(resolve(params_file)), parse_sets(sets)
    with_services = stack is not None and bool(profile.services)
    params = resolve_values(nb, profile, overrides, check_paths=not with_services)[1]
    if not with_services:
        return params, profile
    if lock:
        stack.enter_context(workspace_lock(params.ws.root))
    provided = start_services(profile.services, params.ws.root, stack)
    return resolve_values(nb, profile, overrides, provided=provided)[1], profile


def make_run_dir(profile: Profile, root: Path | None = None) -> Path:
    """`outputs/runs/<UTC time>-<profile>/`, unique even for two runs in the same second."""
    base = root or resolve("outputs/runs")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for i in range(1000):
        run_dir = base / (f"{stamp}-{profile.name}" + (f"-{i}" if i else ""))
        try:
            run_dir.mkdir(parents=True)
            return run_dir
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a run folder under {base}")


def declared_artifacts(notebook: Path) -> list[str]:
    """Globs (relative to the workspace) a notebook declares it writes, from its `pistachio` metadata."""
    nb = nbformat.read(str(notebook), as_version=4)
    return list(nb.metadata.get("pistachio", {}).get("artifacts", []))


def missing_artifacts(notebook: Path, workspace: Path) -> list[str]:
    return [g for g in declared_artifacts(notebook) if not glob.glob(str(workspace / g), recursive=True)]


def scrub_file(path: Path) -> None:
    """Rewrite a file with every secret replaced (only when one is present).

    A notebook is scrubbed parsed (sources, outputs of every mime type, stream text, error
    ename/evalue/traceback, metadata), so `"`, `&`, `<`, `>` in a secret no longer hide it behind JSON escapes.
    """
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".ipynb":
        original, notebook = json.loads(text), scrub_data(json.loads(text))
        clean = text if notebook == original else json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    else:
        clean = scrub(text)
    if clean != text:
        write_text(path, clean)


def failure_summary(err: Exception) -> str:
    """A few lines about the failing cell: which cell, the exception and its message."""
    ename, evalue = getattr(err, "ename", type(err).__name__), getattr(err, "evalue", str(err))
    cell = getattr(err, "exec_count", None)
    where = f"cell [{cell}]: " if cell is not None else ""
    return scrub(f"{where}{ename}: {evalue}".strip())[:2000]


def ipc_kernel_config(folder: str) -> Any:
    """Kernel config: talk to the kernel over Unix sockets in `folder`, not TCP on localhost (no open port, no
    plain-text traffic other local users could read, and no "running over TCP without encryption" warning)."""
    from traitlets.config import Config

    config = Config()
    config.KernelManager.transport = "ipc"
    config.KernelManager.ip = os.path.join(folder, "kernel")
    return config


def execute_one(notebook: Path, inject: dict, run_dir: Path, progress: NotebookProgress | None = None) -> NotebookResult:
    """Run one notebook with papermill; a failure still saves the rendered notebook marked at the failing cell.

    `progress` receives the cell events and the kernel's stdout/stderr as they happen (headless runs).
    """
    import papermill as pm

    result = NotebookResult(notebook.stem, rendered=str(run_dir / notebook.name))
    start = time.perf_counter()
    sockets = tempfile.mkdtemp(prefix="pistachio-kernel-")  # private (0700): the kernel's IPC sockets
    try:
        pm.execute_notebook(
            str(notebook), result.rendered, parameters=inject, kernel_name="python3",
            cwd=str(notebook.parent), progress_bar=False, log_output=progress is not None,
            stdout_file=progress, stderr_file=progress,
            coalesce_streams=True,  # a tqdm bar's redraws become its last state, not one output per redraw
            config=ipc_kernel_config(sockets),
        )
        result.status = "ok"
    except Exception as err:  # papermill raises PapermillExecutionError; kernel deaths raise others
        result.status, result.error = "failed", failure_summary(err)
        result.error_type = getattr(err, "ename", None) or type(err).__name__
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
    result.seconds = round(time.perf_counter() - start, 2)
    rendered = Path(result.rendered)
    if rendered.exists():
        scrub_file(rendered)  # before anything reads it: the HTML is made from the scrubbed notebook
        result.html = str(render_html(rendered))
    result.error = scrub(result.error) if result.error else result.error
    return result


def run_notebooks(target: str, params_file: str | Path, sets: list[str] | None = None, runs_root: Path | None = None,
                  echo: Callable[[str], None] = print, lock_wait_s: float = 0.0, gate: str | None = None) -> RunResult:
    """Validate, lock the workspace, start the profile's services, run the notebooks in order, stop at the first failure.

    `gate="health"` runs the 00_setup checks first (with the services' values) and refuses the run on any FAIL.

    The run folder is made only once the locks are held and the services run, so a refused run leaves none.
    SIGTERM or SIGINT stops the kernel and its process group, saves the partial rendering (scrubbed), marks
    that notebook `interrupted` in summary.json and raises RunInterruptedError.
    """
    notebooks = select_notebooks(target)
    profile = load_profile(resolve(params_file))
    # kernels inherit our environment: a forced MPLBACKEND (e.g. Agg) would stop figures rendering inline
    os.environ.pop("MPLBACKEND", None)
    given = parse_sets(sets)
    plans = validate_run(notebooks, profile, given, check_paths=not profile.services)
    service_starters(profile.services)  # a bad service entry fails here too, before the lock
    results = [NotebookResult(nb.stem, status="skipped") for nb in notebooks]
    with ExitStack() as stack:
        for ws in lock_roots(plans):
            stack.enter_context(workspace_lock(ws, lock_wait_s))
        provided = start_services(profile.services, plans[0][2].ws.root, stack)
        if profile.services:  # again with the services' values, input paths included
            plans = validate_run(notebooks, profile, given, provided)
        if gate == "health":
            health_gate(profile, given, provided, echo)
        run_dir = make_run_dir(profile, runs_root)
        stack.enter_context(interrupt_on_signals())  # innermost: restored before services stop and locks go
        try:
            for i, (nb, inject, params) in enumerate(plans):
                echo(f"running {nb.stem} ...")
                started = time.perf_counter()
                try:
                    with notebook_progress(nb.stem, echo) as progress:
                        results[i] = res = execute_one(nb, inject, run_dir, progress)
                except RunSignalled as sig:
                    results[i] = save_interrupted(nb, run_dir, time.perf_counter() - started, sig.signum)
                    raise
                if res.status == "ok":
                    res.missing_artifacts = missing_artifacts(nb, params.ws.root)
                    if res.missing_artifacts:
                        res.status, res.error = "failed", f"declared artifacts not written: {res.missing_artifacts}"
                save_summary(run_dir, summary(profile, run_dir, results))
                echo(f"  {res.status} in {res.seconds:.1f}s" + (f"\n  {res.error}\n  rendered: {res.rendered}" if res.error else ""))
                if res.status != "ok":
                    break
        except RunSignalled as sig:
            stop_groups(sig.groups)  # whatever the kernel left, before the lock is released
            save_summary(run_dir, summary(profile, run_dir, results))
            name = signal.Signals(sig.signum).name
            echo(f"  interrupted by {name}; partial rendering and summary in {run_dir}")
            raise RunInterruptedError(f"run interrupted by {name}: {run_dir}", signum=sig.signum,
                                      fix="rerun when ready; finished notebooks' outputs are in the workspace") from None
    save_summary(run_dir, summary(profile, run_dir, results))
    return RunResult(run_dir, results)


def health_gate(profile: Profile, sets: dict[str, Any], provided: dict[str, Any], echo: Callable[[str], None]) -> None:
    """The 00_setup checks (`check_pod`) with this run's values; echoes the health table, raises on any FAIL row."""
    from .health import as_text
    from .pod import SetupParams, check_pod

    own = {k: v for k, v in sets.items() if k in SetupParams.model_fields}
    _, params = resolve_values(select_notebooks("00_setup")[0], profile, own, provided=provided)
    echo("health gate: running the 00_setup checks ...")
    report = check_pod(params)
    echo(scrub(as_text(report.health)))
    echo(f"health gate: {report.summary}")
    report.require_healthy()


class RunInterruptedError(PistachioError, RuntimeError):
    """The run was stopped by SIGTERM or SIGINT; its summary.json marks the notebook that was running."""

    def __init__(self, message: str, signum: int, fix: str = "") -> None:
        super().__init__(message, fix=fix)
        self.signum = signum


class RunSignalled(KeyboardInterrupt):
    """Raised in the main thread by the run's signal handler (a KeyboardInterrupt, so no library swallows it)."""

    def __init__(self, signum: int, groups: list[int]) -> None:
        super().__init__(signum)
        self.signum, self.groups = signum, groups


@contextmanager
def interrupt_on_signals() -> Iterator[None]:
    """While running: SIGTERM/SIGINT stop the kernels' process groups at once and raise RunSignalled (once).

    Only in the main thread (the only one Python delivers signals to); a second signal during the cleanup
    is ignored, so the partial rendering and the summary still get written.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if fired:
            return
        fired.append(signum)
        groups = kernel_process_groups()
        for pgid in groups:
            signal_group(pgid, signal.SIGTERM)
        raise RunSignalled(signum, groups)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def kernel_process_groups() -> list[int]:
    """Process groups led by our Jupyter kernels (children in their own session); Linux /proc, else none."""
    groups = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid = int(stat.parent.name)
            state, ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
            if int(ppid) == os.getpid() and int(pgrp) == pid and b"ipykernel" in (stat.parent / "cmdline").read_bytes():
                groups.append(pid)
        except (OSError, ValueError):
            continue
    return groups


def save_interrupted(notebook: Path, run_dir: Path, seconds: float, signum: int) -> NotebookResult:
    """The interrupted notebook's result: papermill saved it cell by cell; scrub it and render it like any other."""
    result = NotebookResult(notebook.stem, status="interrupted", seconds=round(seconds, 2),
                            error=f"interrupted by {signal.Signals(signum).name}")
    rendered = run_dir / notebook.name
    if rendered.exists():
        result.rendered = str(rendered)
        scrub_file(rendered)
        try:
            result.html = str(render_html(rendered))
        except Exception as err:  # a notebook cut mid-write still keeps its scrubbed .ipynb
            result.error += f"; no HTML: {failure_summary(err)}"
    return result


def lock_roots(plans: list[tuple[Path, dict, NotebookParams]]) -> list[Path]:
    """The run's workspaces, each once by its absolute real path: a symlink and its target are one lock."""
    return sorted({Path(os.path.realpath(os.path.abspath(p.ws.root))) for _, _, p in plans})


def summary(profile: Profile, run_dir: Path, results: list[NotebookResult]) -> dict:
    """The run's summary.json: profile, folder, and per notebook status, seconds, error, files."""
    return {
        "profile": str(profile.path),
        "run_dir": str(run_dir),
        "ok": all(r.status == "ok" for r in results),
        "notebooks": {r.notebook: {k: v for k, v in r.__dict__.items() if k != "notebook"} for r in results},
    }


def save_summary(run_dir: Path, data: dict) -> None:
    """summary.json for scripts and index.html for people, rewritten after every notebook."""
    write_json(run_dir / "summary.json", data)
    write_index(run_dir, data)


def load_summary(run_dir: str | Path) -> dict:
    return json.loads((Path(run_dir) / "summary.json").read_text(encoding="utf-8"))


def prepare_notebooks(target: str, params_file: str | Path, sets: list[str] | None = None,
                      out_root: Path | None = None) -> list[Path]:
    """Write copies with the profile's values injected (nothing executed), to step through in JupyterLab.

    Same validation as a run; the copies go to `outputs/interactive/<profile>/` so the clean
    source notebooks stay untouched.
    """
    import papermill as pm

    notebooks = select_notebooks(target)
    profile = load_profile(resolve(params_file))
    plans = validate_run(notebooks, profile, parse_sets(sets), check_paths=not profile.services)
    folder = out_root or resolve(f"outputs/interactive/{profile.name}")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for nb, inject, _ in plans:
        dest = folder / nb.name
        pm.execute_notebook(str(nb), str(dest), parameters=inject, prepare_only=True, kernel_name="python3",
                            progress_bar=False)
        written.append(dest)
    return written
