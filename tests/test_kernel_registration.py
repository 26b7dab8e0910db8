"""`make setup` registers a named kernel that a Jupyter from another environment lists and starts (env file loaded).

The other Jupyter is a venv of its own with only jupyter_client (the pod's JupyterLab stands in), built
once into ~/.cache/pistachio/ from the package index; the kernelspec goes to a temp JUPYTER_DATA_DIR.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from .conftest import ROOT

PIN = next(line for line in (ROOT / "requirements-pinned.txt").read_text().splitlines() if line.startswith("jupyter_client=="))
OTHER_VENV = Path("~/.cache/pistachio").expanduser() / f"other-jupyter-{PIN.split('==')[1]}"
MAKE_VAR = re.compile(r"^KERNEL_(NAME|DISPLAY) := (.+)$", re.MULTILINE)

PROBE = """
import json, sys
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import start_new_kernel
specs = KernelSpecManager().get_all_specs()
km, kc = start_new_kernel(kernel_name=sys.argv[1], startup_timeout=120)
out = []
try:
    kc.execute_interactive("import os, sys, pistachio_nb; print(pistachio_nb.__file__); print(sys.executable); "
                           "print(os.environ.get('PISTACHIO_T_KERNEL', 'unset'))", timeout=120,
                           output_hook=lambda m: out.append(m["content"].get("text", "")))
finally:
    kc.stop_channels(); km.shutdown_kernel(now=True)
import jupyter_client
print(json.dumps({"specs": {k: v["spec"]["display_name"] for k, v in specs.items()}, "out": "".join(out),
                  "client_from": jupyter_client.__file__}))
"""


def makefile_kernel() -> dict[str, str]:
    return dict(MAKE_VAR.findall((ROOT / "Makefile").read_text()))


@pytest.fixture(scope="module")
def other_jupyter() -> Path:
    python = OTHER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(OTHER_VENV)], check=True, timeout=300)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--timeout", "60", PIN], check=True, timeout=600)
    return python


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("jupyter-data")
    env = {**os.environ, "JUPYTER_DATA_DIR": str(folder)}
    for _ in range(2):  # idempotent: twice is the same as once
        subprocess.run(["make", "-o", ".venv/.pinned-stamp", "kernel"], cwd=ROOT, env=env, check=True, timeout=300,
                       capture_output=True)
    return folder


def test_another_jupyter_lists_the_kernel_and_it_imports_the_package(other_jupyter, data_dir, tmp_path):
    kernel = makefile_kernel()
    env_file = tmp_path / "env"
    env_file.write_text("PISTACHIO_T_KERNEL=from-the-env-file\n")
    env_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON", "PISTACHIO_T_"))}
    proc = subprocess.run([str(other_jupyter), "-c", PROBE, kernel["NAME"]], cwd=data_dir, timeout=300,
                          env={**env, "JUPYTER_DATA_DIR": str(data_dir), "PISTACHIO_ENV_FILE": str(env_file)},
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["specs"][kernel["NAME"]] == kernel["DISPLAY"] == "Pistachio (.venv)"
    assert not found["client_from"].startswith(str(ROOT))  # really the other environment's Jupyter
    module_file, executable, from_env_file = found["out"].split()
    assert from_env_file == "from-the-env-file"  # the kernel loads the env file, as the CLI does
    assert Path(module_file) == ROOT / "pistachio_nb" / "__init__.py"
    assert Path(executable) == ROOT / ".venv" / "bin" / "python"
    assert sorted(p.name for p in (data_dir / "kernels").iterdir()) == [kernel["NAME"]]


def test_every_notebook_names_the_registered_kernel():
    kernel = makefile_kernel()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        spec = nbformat.read(str(path), as_version=4).metadata["kernelspec"]
        assert (spec["name"], spec["display_name"]) == (kernel["NAME"], kernel["DISPLAY"]), path.name
