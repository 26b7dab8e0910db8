"""The "Pistachio (.venv)" Jupyter kernel: load the owner-only env file, then start ipykernel.

So a notebook in the pod's own JupyterLab sees the same HF_TOKEN and HF_HOME as the CLI and cron, however
that JupyterLab was started. `make setup` registers it: `python -m pistachio_nb.pod.kernel install --user`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from ..envfile import EnvFileError, load_env_file


def kernel_spec(display_name: str) -> dict:
    """kernel.json: this environment's python runs this module (not ipykernel_launcher)."""
    return {"argv": [sys.executable, "-Xfrozen_modules=off", "-m", "pistachio_nb.pod.kernel", "-f", "{connection_file}"],
            "display_name": display_name, "language": "python", "metadata": {"debugger": True}}


def install(name: str, display_name: str, user: bool, prefix: str | None) -> str:
    """Write the kernelspec (with ipykernel's logos) into the user's or a prefix's kernels folder; replaces its old copy."""
    from ipykernel.kernelspec import RESOURCES
    from jupyter_client.kernelspec import KernelSpecManager

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(shutil.copytree(RESOURCES, Path(tmp) / name))
        (folder / "kernel.json").write_text(json.dumps(kernel_spec(display_name), indent=1), encoding="utf-8")
        return KernelSpecManager().install_kernel_spec(str(folder), name, user=user, prefix=prefix)


def launch() -> None:
    """Start the kernel; an unsafe env file is reported on the kernel's stderr (the Jupyter log), never fatal."""
    if sys.path and (sys.path[0] == "" or Path(sys.path[0]) == Path.cwd()):
        del sys.path[0]  # as ipykernel_launcher: the cwd must not shadow packages (IPython adds it back)
    try:
        load_env_file()
    except EnvFileError as err:
        print(f"pistachio kernel: env file not loaded: {err}", file=sys.stderr)
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


def main(argv: list[str]) -> None:
    if argv[:1] != ["install"]:
        launch()
        return
    parser = argparse.ArgumentParser(prog="python -m pistachio_nb.pod.kernel install")
    parser.add_argument("--user", action="store_true", help="the user's kernels folder (~/.local/share/jupyter)")
    parser.add_argument("--prefix", default=None, help="a prefix's kernels folder instead, e.g. /usr/local")
    parser.add_argument("--name", required=True)
    parser.add_argument("--display-name", required=True)
    args = parser.parse_args(argv[1:])
    print(f"installed kernel {args.display_name!r} in {install(args.name, args.display_name, args.user, args.prefix)}")


if __name__ == "__main__":
    main(sys.argv[1:])
