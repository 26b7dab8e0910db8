"""Pins drift: mismatches and missing packages are found; torch's local build label is not drift."""

import subprocess
import sys

import pytest

from pistachio_nb.envcheck import check_env, drift_table, read_pins
from pistachio_nb.errors import EnvDriftError, InputDataError

from .conftest import ROOT


def test_drift_table_statuses(tmp_path):
    pins = tmp_path / "req.txt"
    pins.write_text("# comment\nTorch==2.13.0\nPyYAML==6.0.3\nnumpy==1.0.0\nnot-installed-pkg==1.2\n")
    installed = {"torch": "2.13.0+cu128", "pyyaml": "6.0.3", "numpy": "2.4.6"}
    table = drift_table(pins, installed).set_index("package")["status"].to_dict()
    assert table == {"torch": "ok", "pyyaml": "ok", "numpy": "mismatch", "not-installed-pkg": "missing"}


def test_repo_pins_match_this_environment():
    assert len(read_pins(ROOT / "requirements-pinned.txt")) > 50
    assert check_env(ROOT / "requirements-pinned.txt", fail_on_drift=True).empty


def test_check_env_raises_on_drift(tmp_path):
    pins = tmp_path / "req.txt"
    pins.write_text("numpy==0.0.1\n")
    with pytest.raises(EnvDriftError, match="numpy"):
        check_env(pins)
    assert list(check_env(pins, fail_on_drift=False)["package"]) == ["numpy"]


def test_missing_pins_file_is_a_clear_error(tmp_path):
    with pytest.raises(InputDataError, match="pins file not found"):
        read_pins(tmp_path / "nope.txt")


def test_cli_check_env_exit_codes(tmp_path):
    pins = tmp_path / "req.txt"
    pins.write_text("numpy==0.0.1\n")
    drift = subprocess.run([sys.executable, "-m", "pistachio_nb.cli", "check-env", "--pins", str(pins)],
                           capture_output=True, text=True, timeout=120)
    assert drift.returncode == 3 and "numpy" in drift.stdout and "0.0.1" in drift.stdout
    clean = subprocess.run([sys.executable, "-m", "pistachio_nb.cli", "check-env"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0, clean.stdout
