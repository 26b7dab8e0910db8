"""A fake pod in a temp folder: ComfyUI from the shared tarball and two custom nodes as local git repositories
(two commits each, the "remotes" in origin/), a models folder with small files, ComfyUI's real venv as its python.
"""

from __future__ import annotations

import os
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from pistachio_nb.paths import repo_root
from pistachio_testkit import real_comfyui

TARBALL = repo_root().parent / "shared" / "comfyui-0.3.64-src.tar.gz"
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout.strip()


def commit_all(folder: Path, message: str) -> str:
    git(folder, "add", "-A")
    git(folder, "commit", "--quiet", "-m", message)
    return git(folder, "rev-parse", "HEAD")


def node_repo(folder: Path, name: str, requirements: str | None) -> list[str]:
    """A custom node with NODE_CLASS_MAPPINGS, two commits."""
    folder.mkdir(parents=True)
    git(folder, "init", "--quiet")
    if requirements is not None:
        (folder / "requirements.txt").write_text(requirements)
    (folder / "__init__.py").write_text(f"NODE_CLASS_MAPPINGS = {{}}\nVERSION = 1  # {name}\n")
    first = commit_all(folder, "v1")
    (folder / "__init__.py").write_text(f"NODE_CLASS_MAPPINGS = {{}}\nVERSION = 2  # {name}\n")
    return [first, commit_all(folder, "v2")]


@dataclass
class FakePod:
    root: Path
    origin: Path
    comfy_dir: Path
    python: Path
    comfy_commits: list[str]
    node_commits: dict[str, list[str]]

    @property
    def models_dir(self) -> Path:
        return self.comfy_dir / "models"


def make_fake_pod(root: Path, bad_node: bool = False) -> FakePod:
    origin = root / "origin"
    src = origin / "ComfyUI"
    origin.mkdir(parents=True)
    with tarfile.open(TARBALL) as tar:
        tar.extractall(origin, filter="data")
    (origin / "ComfyUI-0.3.64").rename(src)
    git(src, "init", "--quiet")
    comfy_commits = [commit_all(src, "ComfyUI 0.3.64")]
    (src / "README.md").write_text((src / "README.md").read_text() + "\nlocal change\n")
    comfy_commits.append(commit_all(src, "a later commit"))
    nodes = {"NodeA": node_repo(origin / "NodeA", "NodeA", "requests\n"), "NodeB": node_repo(origin / "NodeB", "NodeB", None)}
    if bad_node:
        nodes["NodeBad"] = node_repo(origin / "NodeBad", "NodeBad", "pistachio-no-such-package-xyz==0.0.1\n")
    comfy = root / "pod" / "ComfyUI"
    subprocess.run(["git", "clone", "--quiet", str(src), str(comfy)], check=True)
    git(comfy, "checkout", "--quiet", "--detach", comfy_commits[0])
    for name, commits in nodes.items():
        subprocess.run(["git", "clone", "--quiet", str(origin / name), str(comfy / "custom_nodes" / name)], check=True)
        git(comfy / "custom_nodes" / name, "checkout", "--quiet", "--detach", commits[0])
    for sub, name, size in (("checkpoints", "base.safetensors", 3000), ("loras", "character.safetensors", 1000)):
        (comfy / "models" / sub).mkdir(parents=True, exist_ok=True)
        (comfy / "models" / sub / name).write_bytes(os.urandom(size))
    return FakePod(root, origin, comfy, real_comfyui.comfy_python(), comfy_commits, nodes)
