"""Read-only git queries for a folder: commits touching it, uncommitted paths, file contents at a commit."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

GIT_TIMEOUT_S = 120
# No optional locks: `git status` would otherwise refresh .git/index, i.e. write inside the audited folder.
READ_ONLY_ENV = {"GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}


@dataclass(frozen=True)
class Commit:
    sha: str
    date: datetime  # author date (what `git log` shows; fixed in the demo knowledge base)
    paths: tuple[str, ...]  # changed files, relative to the audited folder


def git(folder: Path, *args: str, stdin: bytes | None = None) -> bytes:
    """Run git in `folder` without touching its index; raise CalledProcessError on failure."""
    return subprocess.run(
        ["git", "-c", "core.quotepath=off", *args], cwd=folder, input=stdin, capture_output=True, check=True,
        timeout=GIT_TIMEOUT_S, env={**os.environ, **READ_ONLY_ENV},
    ).stdout


def is_git_folder(folder: Path) -> bool:
    """True when `folder` is inside a git work tree and git is installed."""
    try:
        return git(folder, "rev-parse", "--is-inside-work-tree").strip() == b"true"
    except (OSError, subprocess.CalledProcessError):
        return False


def history(folder: Path) -> list[Commit]:
    """Commits that changed something below `folder`, oldest first (empty when it is not a repo)."""
    if not is_git_folder(folder):
        return []
    try:
        out = git(folder, "log", "--reverse", "--no-renames", "--relative", "--name-only",
                  "--format=%x1e%H%x1f%aI", "--", ".").decode("utf-8", "replace")
    except subprocess.CalledProcessError:  # a repo without commits yet
        return []
    commits = []
    for record in out.split("\x1e")[1:]:
        head, _, names = record.partition("\n")
        sha, date = head.split("\x1f")
        commits.append(Commit(sha, datetime.fromisoformat(date), tuple(p for p in names.splitlines() if p)))
    return commits


def uncommitted(folder: Path) -> set[str]:
    """Paths (relative to `folder`) that are modified, staged or untracked: git dates do not describe them."""
    if not is_git_folder(folder):
        return set()
    prefix = git(folder, "rev-parse", "--show-prefix").decode().strip()
    out = git(folder, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", ".").decode("utf-8", "replace")
    entries, paths = iter(out.split("\0")), set()
    for entry in entries:
        if len(entry) > 3:
            paths.add(entry[3:])
            if entry[0] in "RC":  # a rename or copy is followed by its old path
                next(entries, None)
    return {p[len(prefix):] for p in paths if p.startswith(prefix)}


def read_at(folder: Path, specs: list[tuple[str, str]]) -> list[str | None]:
    """Text of each (commit, path-relative-to-folder), None where the file does not exist; one git process."""
    if not specs:
        return []
    request = "".join(f"{sha}:./{path}\n" for sha, path in specs).encode()
    out = git(folder, "cat-file", "--batch", stdin=request)
    texts, pos = [], 0
    for _ in specs:
        header_end = out.index(b"\n", pos)
        header = out[pos:header_end].split()
        if len(header) != 3:  # "<spec> missing" (or ambiguous): no content follows
            texts.append(None)
            pos = header_end + 1
            continue
        size = int(header[2])
        body = out[header_end + 1 : header_end + 1 + size]
        texts.append(body.decode("utf-8", "replace") if header[1] == b"blob" else None)
        pos = header_end + 1 + size + 1
    return texts
