"""Live progress of a headless notebook run (cell number, the kernel's stdout/stderr and tqdm bars, elapsed), and the run's log file.

Without it a cron log says "running 03_training ..." and nothing for hours. papermill reports each cell's
start and end on its logger and hands stream outputs to a file-like object; `NotebookProgress` turns both
into scrubbed lines `[03_training cell 7 | 12m03s] ...`. A tqdm bar redraws itself with `\\r` many
times a second: one redraw is kept per `bar_every_s`, and the bar's last state always shows.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from .secrets import scrub

CELL_EVENT = re.compile(r"^(Executing|Ending) Cell (\d+)-*$")
BAR_EVERY_S = 10.0
# tqdm.auto picks its console bars (text on stderr) instead of notebook widgets, which a headless run
# cannot see, when the environment has a variable starting with SPYDER (tqdm/autonotebook.py)
CONSOLE_TQDM_VAR = "SPYDER_PISTACHIO_HEADLESS"


def clock(seconds: float) -> str:
    """`42s`, `12m03s`, `2h05m`."""
    s = int(seconds)
    return f"{s}s" if s < 60 else f"{s // 60}m{s % 60:02d}s" if s < 3600 else f"{s // 3600}h{s % 3600 // 60:02d}m"


class NotebookProgress(logging.Handler):
    """Receives papermill's cell events (as a logging handler) and the kernel's streams (as `write`)."""

    def __init__(self, notebook: str, echo: Callable[[str], None], bar_every_s: float = BAR_EVERY_S) -> None:
        super().__init__(logging.INFO)
        self.notebook, self.echo, self.bar_every_s = notebook, echo, bar_every_s
        self.started = self.cell_started = time.monotonic()
        self.cell: int | None = None
        self.pending, self.bar, self.bar_shown_at = "", "", float("-inf")  # a first bar shows at once

    def line(self, text: str) -> None:
        where = f"cell {self.cell} | " if self.cell is not None else ""
        self.echo(scrub(f"[{self.notebook} {where}{clock(time.monotonic() - self.started)}] {text}"))

    def emit(self, record: logging.LogRecord) -> None:
        event = CELL_EVENT.match(record.getMessage().strip())
        if not event:
            return  # the stream text papermill also logs arrives through write()
        self.flush_bar()
        if event.group(1) == "Executing":
            self.cell, self.cell_started = int(event.group(2)), time.monotonic()
        elif time.monotonic() - self.cell_started >= 1.0:
            self.line(f"cell done in {clock(time.monotonic() - self.cell_started)}")

    def write(self, text: str) -> int:
        """Stream text from the kernel: whole lines are echoed; `\\r` redraws (tqdm) are thinned out."""
        self.pending += text
        while True:
            cut = min((i for i in (self.pending.find("\n"), self.pending.find("\r")) if i >= 0), default=-1)
            if cut < 0:
                break
            piece, sep, self.pending = self.pending[:cut], self.pending[cut], self.pending[cut + 1:]
            if sep == "\r":
                self.redraw(piece)
            elif piece.strip():
                self.bar = ""
                self.line(piece.rstrip())
            else:
                self.flush_bar()
        return len(text)

    def redraw(self, piece: str) -> None:
        if not piece.strip():
            return
        self.bar = piece.strip()
        if time.monotonic() - self.bar_shown_at >= self.bar_every_s:
            self.line(self.bar)
            self.bar, self.bar_shown_at = "", time.monotonic()

    def flush_bar(self) -> None:
        """Show the bar's last state if it was not shown yet (the cell ended, or a plain line followed)."""
        if self.bar:
            self.line(self.bar)
            self.bar = ""

    def flush(self) -> None:  # file-like: papermill flushes after each write; lines are echoed as they complete
        pass


@contextmanager
def notebook_progress(notebook: str, echo: Callable[[str], None] | None) -> Iterator[NotebookProgress | None]:
    """While a notebook runs: papermill's cell events go to the progress lines; console tqdm in the kernel."""
    if echo is None:
        yield None
        return
    progress = NotebookProgress(notebook, echo)
    logger = logging.getLogger("papermill")
    level, propagate, saved_var = logger.level, logger.propagate, os.environ.get(CONSOLE_TQDM_VAR)
    logger.addHandler(progress)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # papermill also logs every output line: only these progress lines are wanted
    os.environ[CONSOLE_TQDM_VAR] = "1"  # the kernel inherits the environment at start
    try:
        yield progress
    finally:
        progress.flush_bar()
        if progress.pending.strip():
            progress.line(progress.pending.strip())
        logger.removeHandler(progress)
        logger.setLevel(level)
        logger.propagate = propagate
        if saved_var is None:
            os.environ.pop(CONSOLE_TQDM_VAR, None)
        else:
            os.environ[CONSOLE_TQDM_VAR] = saved_var


class _Tee:
    """A text stream that writes to the terminal and, scrubbed, to the log file."""

    def __init__(self, stream: TextIO, log: TextIO) -> None:
        self.stream, self.log = stream, log

    def write(self, text: str) -> int:
        self.stream.write(text)
        self.log.write(scrub(text) if text.strip() else text)
        self.log.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


@contextmanager
def tee_output(log_path: str | os.PathLike, title: str) -> Iterator[None]:
    """Copy everything this process prints (stdout and stderr) into `log_path`, appended under a dated title line.

    So a cron line needs no `>> log 2>&1`: a refused gate, an error and the progress all land in the log.
    """
    path = Path(log_path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as log:
        log.write(scrub(f"==== {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC {title}\n"))
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(sys.stdout, log), _Tee(sys.stderr, log)
        try:
            yield
        finally:
            sys.stdout, sys.stderr = saved
