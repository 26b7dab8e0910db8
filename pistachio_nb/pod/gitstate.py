"""The git facts a pod lock records and restores: a checkout's remote, commit and whether it has local edits."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ..errors import PistachioError

GIT_TIMEOUT_S = 600  # a clone of ComfyUI over a slow link; every git call has a bound


class GitError(PistachioError, RuntimeError):
    """A git command failed; the message names the folder and the command."""


def git(folder: Path, *args: str, check: bool = True) -> str:
    done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=GIT_TIMEOUT_S)
    if check and done.returncode:
        raise GitError(f"git {' '.join(args)} in {folder} failed: {done.stderr.strip()[-500:]}",
                       fix="see git's message; a pod folder may be a plain copy (not a git checkout)")
    return done.stdout.strip()


def without_credentials(url: str) -> str:
    """A remote URL with any user:token@ removed (a lock is committed; a token must never be in it)."""
    parts = urlsplit(url)
    if parts.scheme and parts.hostname and (parts.username or parts.password):
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return url


@dataclass(frozen=True)
class Checkout:
    remote: str
    commit: str
    dirty: bool  # tracked files changed (untracked files, e.g. models or caches, do not count)


def read_checkout(folder: Path) -> Checkout:
    """Remote (credentials removed), HEAD commit and dirtiness of a git checkout."""
    if not (folder / ".git").exists():
        raise GitError(f"{folder} is not a git checkout", fix="clone it with git so its commit can be locked and restored")
    remote = git(folder, "remote", "get-url", "origin", check=False)
    return Checkout(without_credentials(remote), git(folder, "rev-parse", "HEAD"),
                    bool(git(folder, "status", "--porcelain", "--untracked-files=no")))


def has_commit(folder: Path, commit: str) -> bool:
    return subprocess.run(["git", "-C", str(folder), "cat-file", "-e", f"{commit}^{{commit}}"],
                          capture_output=True, timeout=GIT_TIMEOUT_S).returncode == 0


def checkout_at(folder: Path, source: str, commit: str) -> str:
    """Make `folder` a checkout of `source` at `commit`; returns what was done ("ok" when it already was).

    Refuses a checkout with local edits: restoring must never throw away someone's changes.
    """
    if not folder.exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["git", "clone", "--quiet", source, str(folder)], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S)
        if done.returncode:
            raise GitError(f"git clone {without_credentials(source)} into {folder} failed: {done.stderr.strip()[-500:]}",
                           fix="check the remote (or pass --mirror with a local copy)")
        git(folder, "checkout", "--quiet", "--detach", commit)
        return f"cloned at {commit[:12]}"
    state = read_checkout(folder)
    if state.commit == commit:
        return "ok"
    if state.dirty:
        raise GitError(f"{folder} has local edits and is at {state.commit[:12]}, not the locked {commit[:12]}",
                       fix=f"commit or stash them in {folder} (nothing was changed), then run pod start again")
    if not has_commit(folder, commit):
        git(folder, "fetch", "--quiet", source)
    git(folder, "checkout", "--quiet", "--detach", commit)
    return f"moved {state.commit[:12]} -> {commit[:12]}"
