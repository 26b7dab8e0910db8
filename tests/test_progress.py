"""Headless progress lines: cell number, elapsed, whole output lines, tqdm redraws thinned, secrets scrubbed."""

from __future__ import annotations

import logging

from pistachio_nb.progress import NotebookProgress, clock


def _event(progress: NotebookProgress, text: str) -> None:
    progress.emit(logging.LogRecord("papermill", logging.INFO, __file__, 1, text, None, None))


def test_lines_carry_the_cell_and_bars_are_thinned(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_ProgressSecret123456")
    lines: list[str] = []
    progress = NotebookProgress("03_training", lines.append, bar_every_s=3600)
    _event(progress, "Executing Cell 7----------------------------------")
    progress.write("loading hf_ProgressSecret123456\nsteps:   0%| 0/2000\r")
    for step in range(1, 2001):
        progress.write(f"steps: {step // 20:3d}%| {step}/2000\r")
    progress.write("\n")
    _event(progress, "Ending Cell 7-------------------------------------------")
    assert lines[0].startswith("[03_training cell 7 | 0s] loading ***")
    assert len(lines) == 3 and lines[1].endswith("steps:   0%| 0/2000") and lines[2].endswith("2000/2000")
    _event(progress, "Executing Cell 9---")
    progress.write("partial")  # no newline yet: nothing shown
    assert len(lines) == 3 and progress.pending == "partial"


def test_clock():
    assert [clock(s) for s in (42, 723, 7500)] == ["42s", "12m03s", "2h05m"]
