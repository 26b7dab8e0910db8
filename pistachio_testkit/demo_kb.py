"""Generate the demo knowledge base: Markdown files with planted problems, committed with fixed dates."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from pistachio_nb.errors import InputDataError
from pistachio_nb.files import write_text
from .demo_kb_text import COMMITS

MARKER = Path(".git") / "pistachio-demo-kb"  # inside .git: neither audited nor shown by git status
AUTHOR = ("Pistachio Demo", "demo@pistachio.invalid")


def fingerprint() -> str:
    """Identifies the demo text, so an older generated demo is rebuilt and a current one reused."""
    return hashlib.sha256(repr(COMMITS).encode()).hexdigest()[:16]


def _is_current(root: Path) -> bool:
    return (root / MARKER).is_file() and (root / MARKER).read_text().strip() == fingerprint()


def _git(folder: Path, *args: str, date: str = "2025-01-01T00:00:00+00:00") -> None:
    env = {
        **os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",  # no user hooks or signing
        "GIT_AUTHOR_NAME": AUTHOR[0], "GIT_AUTHOR_EMAIL": AUTHOR[1], "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_NAME": AUTHOR[0], "GIT_COMMITTER_EMAIL": AUTHOR[1], "GIT_COMMITTER_DATE": date,
    }
    subprocess.run(["git", *args], cwd=folder, env=env, check=True, capture_output=True, timeout=60)


def write_demo_kb(root: Path) -> Path:
    """Build the demo KB at `root` (a git repo, one commit per dated step); reuse it if already current.

    Refuses to touch a non-empty folder that is not a generated demo: it could be the user's own notes.
    """
    root = Path(root)
    if _is_current(root):
        return root
    if root.exists() and any(root.iterdir()) and not (root / MARKER).is_file():
        raise InputDataError(f"kb_root {root} is not empty and is not a generated demo knowledge base",
                             fix="set generate_demo to false to audit your own folder, or choose a new kb_root")
    root.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))  # unique: parallel runs do not clash
    try:
        _git(build, "init", "-q", "-b", "main")
        for date, message, files in COMMITS:
            for rel, text in files.items():
                write_text(build / rel, text)
            _git(build, "add", "-A")
            _git(build, "commit", "-q", "-m", message, date=date)
        write_text(build / MARKER, fingerprint() + "\n")
        if _is_current(root):  # built meanwhile by a parallel run
            return root
        if root.exists():
            shutil.rmtree(root)  # empty, or an older generated demo (the marker says so)
        build.rename(root)
    finally:
        if build.exists():
            shutil.rmtree(build)
    return root
