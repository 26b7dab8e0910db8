"""Where things live: the repo root, relative-path resolution and the per-character workspace layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def repo_root() -> Path:
    """The checkout root (folder holding pyproject.toml); relative params paths resolve against it."""
    here = Path(__file__).resolve().parent
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "pistachio_nb").is_dir():
            return folder
    return Path.cwd()


def resolve(path: str | Path) -> Path:
    """Absolute path: `~` expanded, relative paths taken from the repo root (not the notebook's cwd)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (repo_root() / p).resolve()


@dataclass(frozen=True)
class Workspace:
    """One character's working folder; every stage reads and writes below it."""

    root: Path

    def sub(self, name: str) -> Path:
        """A stage folder (created on first use)."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def dataset(self) -> Path:
        return self.sub("dataset")

    @property
    def lora(self) -> Path:
        return self.sub("lora")

    @property
    def samples(self) -> Path:
        return self.sub("samples")

    @property
    def comparison(self) -> Path:
        return self.sub("comparison")

    @property
    def inpainting(self) -> Path:
        return self.sub("inpainting")

    @property
    def batches(self) -> Path:
        return self.sub("batches")

    @property
    def models(self) -> Path:
        return self.sub("models")
