"""Keep personal data out of git: a workspace or input inside the checkout must be git-ignored there.

With the repo cloned at `/workspace/pistachio`, a workspace, photo folder or prompts file inside it is
one `git add -A` away from a public remote. A run refuses that before any work, naming the path and
the fix. Inputs the repo itself ships (tracked files such as `params/prompts-demo.csv`) are allowed;
what is refused is data git would pick up: a workspace that is not ignored, or untracked, unignored files.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .errors import ParamsError
from .params import NotebookParams
from .paths import repo_root, resolve

GIT_TIMEOUT_S = 10


class DataInCheckoutError(ParamsError):
    """A workspace or input the run would use lies inside the git checkout without being ignored."""


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=GIT_TIMEOUT_S)


def checkout_root() -> Path | None:
    """The git work tree holding this package, or None (an installed copy, no git on the machine)."""
    root = repo_root()
    try:
        found = _git(root, "rev-parse", "--show-toplevel")
    except (OSError, subprocess.TimeoutExpired):
        return None
    return Path(found.stdout.strip()).resolve() if found.returncode == 0 else None


def inside(path: Path, root: Path) -> Path | None:
    """`path` relative to `root` when it lies inside it (symlinks resolved), else None."""
    real = Path(os.path.realpath(path))
    return real.relative_to(root) if real.is_relative_to(root) else None


def exposed_files(root: Path, rel: Path) -> list[str]:
    """Files under `rel` that `git add -A` would add: untracked and not ignored."""
    found = _git(root, "ls-files", "--others", "--exclude-standard", "--", str(rel))
    return found.stdout.splitlines()


def check_outside_git(label: str, path: Path, written: bool, root: Path | None = None) -> None:
    """Refuse `path` inside the checkout unless git ignores it (`written`: the run writes there, so ignored it must be).

    An input may also be what the repo tracks, as long as git would add nothing new from it.
    """
    root = root if root is not None else checkout_root()
    rel = inside(path, root) if root else None
    if rel is None:
        return
    if rel != Path(".") and _git(root, "check-ignore", "-q", "--", str(rel)).returncode == 0:
        return
    loose = exposed_files(root, rel)
    tracked = bool(_git(root, "ls-files", "--", str(rel)).stdout.strip())
    if written or loose or not tracked or rel == Path("."):
        detail = f" ({len(loose)} untracked file(s), e.g. {loose[0]})" if loose else ""
        raise DataInCheckoutError(
            f"{label}: {path} is inside the git checkout {root} and not git-ignored{detail}: "
            "personal data there is one `git add -A` away from a remote",
            fix=f"move it outside the checkout (e.g. /workspace/pistachio-data/) and set {label} to the new path"
                + (f", or add '{rel.as_posix()}/' to {root / '.git/info/exclude'}" if rel != Path(".") else ""))


def check_params_outside_git(params: NotebookParams, check_inputs: bool = True) -> None:
    """The workspace and every declared input (`input_paths`: source_dir, prompts_file, ...) of validated params."""
    root = checkout_root()
    if root is None:
        return
    check_outside_git("workspace", resolve(params.workspace), written=True, root=root)
    for name in params.input_paths if check_inputs else ():
        value = getattr(params, name)
        if value is not None:
            check_outside_git(name, resolve(value), written=False, root=root)
