"""One exception root for the suite; each subclass carries the fix in its message (papermill/requests style)."""

from __future__ import annotations


class PistachioError(Exception):
    """Root of every error this package raises on purpose; `fix` says what the user should do."""

    def __init__(self, message: str, fix: str = "") -> None:
        self.fix = fix
        super().__init__(f"{message}\n  fix: {fix}" if fix else message)


class ParamsError(PistachioError, ValueError):
    """A parameter (from a profile, --set or a notebook cell) is unknown, mistyped or out of range."""


class EnvDriftError(PistachioError, RuntimeError):
    """Installed packages differ from requirements-pinned.txt."""


class WorkspaceLockedError(PistachioError, RuntimeError):
    """Another run holds the workspace lock (e.g. two cron jobs at once)."""


class NotebookFailedError(PistachioError, RuntimeError):
    """A notebook raised while running headless; the rendered notebook shows the failing cell."""


class ServiceError(PistachioError, RuntimeError):
    """A demo service the profile asks for (e.g. the ComfyUI test server) cannot start."""


class InputDataError(PistachioError, ValueError):
    """A user-supplied file or folder is missing or unusable."""


class ModelLoadError(PistachioError, RuntimeError):
    """A model could not be loaded from a local path or hub id."""
