"""Atomic folder writes: fill a temp folder beside the destination, then rename it into place.

The folder-level twin of `files.atomic_path`, for multi-file artifacts (model folders, training
states, diffusers LoRA folders): a crash leaves the old folder or none, never a half-written one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def replace_dir(new: Path, dest: Path) -> None:
    """Rename folder `new` to `dest`, moving an older `dest` aside first (then deleting it)."""
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(new, dest)


@contextmanager
def atomic_dir(dest: str | Path) -> Iterator[Path]:
    """Yield a temp folder beside `dest`; on success it replaces `dest`, on error it is removed."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        yield tmp
        replace_dir(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
