"""`apply_proposal`: commit a knowledge proposal onto a new branch of the audited git repository.

Reversible by construction: it refuses a dirty working tree or a repository that moved on since the
proposal was made, and it only commits on a new branch (`git switch -` and `git branch -D` undo it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputDataError, PistachioError
from ..files import read_json, write_text
from . import gitlog
from .proposal import MANIFEST

GIT_TIMEOUT_S = 120
FALLBACK_IDENTITY = ("-c", "user.name=pistachio knowledge apply", "-c", "user.email=pistachio@localhost")


class ApplyRefusedError(PistachioError, RuntimeError):
    """The repository is not in a state where a proposal can be applied safely."""


@dataclass(frozen=True)
class Applied:
    branch: str
    commit: str
    previous: str  # the branch (or commit) the repository was on: `git switch <previous>` goes back

    @property
    def undo(self) -> str:
        return f"git switch {self.previous} && git branch -D {self.branch}"


def _git(repo: Path, *args: str) -> str:
    """Run a git command that may write (branch, add, commit) in `repo`; raise on failure."""
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=GIT_TIMEOUT_S,
                          env={**os.environ, "LC_ALL": "C"})
    if done.returncode:
        raise ApplyRefusedError(f"git {' '.join(args)} failed in {repo}: {done.stderr.strip()}",
                                fix="fix the repository state git complains about, then rerun")
    return done.stdout.strip()


def _checks(proposal: Path, repo: Path) -> dict:
    """Everything that must hold before the first write: the manifest, a clean repo at the proposal's commit."""
    if not (proposal / MANIFEST).is_file():
        raise InputDataError(f"--proposal {proposal} has no {MANIFEST}",
                             fix="pass the knowledge_proposal folder that 07_knowledge_audit wrote into the workspace")
    manifest = read_json(proposal / MANIFEST)
    if not gitlog.is_git_folder(repo):
        raise ApplyRefusedError(f"--repo {repo} is not a git repository",
                                fix="apply inside a git repository (git init && git add . && git commit), so it can be undone")
    dirty = sorted(gitlog.uncommitted(repo))
    if dirty:
        raise ApplyRefusedError(f"--repo {repo} has uncommitted changes: {', '.join(dirty[:5])}",
                                fix="commit or stash them first: the proposal is applied on a clean tree only")
    head = _git(repo, "rev-parse", "HEAD")
    if manifest["base_commit"] != head:
        raise ApplyRefusedError(f"{repo} is at {head[:10]}, the proposal was made at {str(manifest['base_commit'])[:10]}",
                                fix="rerun 07_knowledge_audit on the current notes for a fresh proposal")
    return manifest


def apply_proposal(proposal: str | Path, repo: str | Path, branch: str | None = None) -> Applied:
    """Switch `repo` to a new branch and commit the proposed tree there (renames, edits, deletions)."""
    proposal, repo = Path(proposal), Path(repo)
    manifest = _checks(proposal, repo)
    branch = branch or f"knowledge-proposal-{manifest['base_commit'][:8]}"
    previous = _git(repo, "rev-parse", "--abbrev-ref", "HEAD")
    previous = previous if previous != "HEAD" else _git(repo, "rev-parse", "HEAD")
    _git(repo, "switch", "-c", branch)
    for old, new in manifest["renames"].items():
        (repo / new).parent.mkdir(parents=True, exist_ok=True)
        _git(repo, "mv", "--", old, new)
    for rel in manifest["deletes"]:
        _git(repo, "rm", "-q", "--", rel)
    for rel in manifest["writes"]:
        write_text(repo / rel, (proposal / "files" / rel).read_text())
        _git(repo, "add", "--", rel)
    identity = () if subprocess.run(["git", "config", "user.email"], cwd=repo, capture_output=True,
                                    timeout=GIT_TIMEOUT_S).returncode == 0 else FALLBACK_IDENTITY
    _git(repo, *identity, "commit", "-q", "-m", "Apply the knowledge proposal from 07_knowledge_audit\n\n"
         f"Always loaded now: {', '.join(manifest['always_loaded_after'])}")
    return Applied(branch, _git(repo, "rev-parse", "HEAD"), previous)


def try_on_copy(proposal: str | Path, repo: str | Path, dest: str | Path) -> Applied:
    """Clone `repo` to `dest` (replacing an earlier trial there) and apply the proposal to the clone only."""
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    _git(Path(repo), "clone", "-q", "--", str(Path(repo).resolve()), str(dest.resolve()))
    return apply_proposal(proposal, dest)
