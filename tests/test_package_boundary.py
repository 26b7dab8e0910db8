"""The product package stands alone: importing all of it loads neither the demo/test world nor tornado."""

from __future__ import annotations

import re
import subprocess
import sys

from pistachio_nb.paths import repo_root

IMPORT_ALL = """
import importlib, pkgutil, sys
import pistachio_nb
names = [m.name for m in pkgutil.walk_packages(pistachio_nb.__path__, "pistachio_nb.")]
for name in names:
    importlib.import_module(name)
print(len(names), sorted(m for m in sys.modules if m.split(".")[0] in ("tornado", "pistachio_testkit")))
"""


def test_importing_every_product_module_loads_no_testkit_and_no_tornado():
    proc = subprocess.run([sys.executable, "-c", IMPORT_ALL], capture_output=True, text=True, timeout=300, cwd=repo_root())
    assert proc.returncode == 0, proc.stderr[-2000:]
    count, loaded = proc.stdout.split(" ", 1)
    assert int(count) > 50 and loaded.strip() == "[]"


def test_no_product_source_imports_the_testkit_or_has_a_demo_switch():
    offenders = []
    for path in (repo_root() / "pistachio_nb").rglob("*.py"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"^\s*(from|import) pistachio_testkit|\b(generate_demo\w*|if .*\bdemo\b)", line):
                offenders.append(f"{path.relative_to(repo_root())}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
