"""Secrets for cron and JupyterLab from one env file only its owner can read (`~/.config/pistachio/env`).

Cron starts jobs with an almost empty environment, so an `export HF_TOKEN=...` typed in a shell never
reaches a nightly run. The CLI loads this file first instead: `KEY=value` lines (`export ` and quotes
allowed, `#` comments). A variable already set in the environment wins. Values are never printed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import ParamsError

ENV_FILE_VAR = "PISTACHIO_ENV_FILE"  # points at another env file (e.g. on the pod's persistent volume)
DEFAULT_ENV_FILE = Path("~/.config/pistachio/env")


class EnvFileError(ParamsError):
    """The env file is unsafe (group/other-readable, not ours) or has a line that is not KEY=value."""


def env_file_path() -> Path:
    """`$PISTACHIO_ENV_FILE` when set, else `~/.config/pistachio/env`."""
    return Path(os.environ.get(ENV_FILE_VAR) or DEFAULT_ENV_FILE).expanduser()


def check_private(path: Path) -> None:
    """Refuse a file that another user could read or that someone else owns: it holds tokens."""
    info = path.stat()
    if info.st_mode & 0o077:
        raise EnvFileError(f"{path}: readable by group/others (mode {stat.filemode(info.st_mode)}); secrets were not loaded",
                           fix=f"chmod 600 {path}")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise EnvFileError(f"{path}: owned by uid {info.st_uid}, not by you (uid {os.getuid()})",
                           fix=f"chown {os.getuid()} {path} (or point {ENV_FILE_VAR} at your own file)")


def parse_env_lines(text: str, path: Path) -> dict[str, str]:
    """`KEY=value` pairs; the error names the line number, never the line (it may hold a token)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key.isidentifier():
            raise EnvFileError(f"{path}: line {number} is not KEY=value", fix="one KEY=value per line (# for comments)")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def load_env_file(path: Path | None = None) -> list[str]:
    """Put the env file's variables into `os.environ` (unset ones only); returns their names. No file: nothing."""
    path = path or env_file_path()
    if not path.is_file():
        return []
    check_private(path)
    values = parse_env_lines(path.read_text(encoding="utf-8"), path)
    for key, value in values.items():
        os.environ.setdefault(key, value)
    return sorted(values)
