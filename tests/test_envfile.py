"""Secrets for cron from an owner-only env file: loaded by the CLI, refused when others can read it, never echoed."""

from __future__ import annotations

import os

import pytest

from pistachio_nb.cli import main
from pistachio_nb.envfile import ENV_FILE_VAR, EnvFileError, env_file_path, load_env_file
from pistachio_nb.runner import EXIT_PARAMS

SECRET = "hf_EnvFileSecret0123456789"


def _unset(monkeypatch, *names: str) -> None:
    """Unset for this test and unset again after it (whatever the code under test sets)."""
    for name in names:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def _env_file(tmp_path, text: str, mode: int = 0o600):
    path = tmp_path / "env"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_loads_pairs_and_the_environment_wins(tmp_path, monkeypatch):
    _unset(monkeypatch, "HF_TOKEN", "PISTACHIO_T_QUOTED")
    monkeypatch.setenv("PISTACHIO_T_SET", "from-shell")
    path = _env_file(tmp_path, f"# tokens\nexport HF_TOKEN={SECRET}\nPISTACHIO_T_QUOTED='a b'\n\nPISTACHIO_T_SET=file\n")
    assert load_env_file(path) == ["HF_TOKEN", "PISTACHIO_T_QUOTED", "PISTACHIO_T_SET"]
    assert os.environ["HF_TOKEN"] == SECRET and os.environ["PISTACHIO_T_QUOTED"] == "a b"
    assert os.environ["PISTACHIO_T_SET"] == "from-shell"
    assert load_env_file(tmp_path / "missing") == []  # no file: nothing to load, no error


def test_group_or_other_readable_file_is_refused_without_echoing_it(tmp_path, monkeypatch):
    _unset(monkeypatch, "HF_TOKEN")
    path = _env_file(tmp_path, f"HF_TOKEN={SECRET}\n", mode=0o644)
    with pytest.raises(EnvFileError) as err:
        load_env_file(path)
    assert "readable by group/others" in str(err.value) and f"chmod 600 {path}" in str(err.value)
    assert SECRET not in str(err.value) and "HF_TOKEN" not in os.environ
    bad = _env_file(tmp_path, f"HF_TOKEN {SECRET}\n")
    with pytest.raises(EnvFileError, match="line 1 is not KEY=value") as err:
        load_env_file(bad)
    assert SECRET not in str(err.value)


def test_the_cli_loads_the_file_named_by_the_variable_and_refuses_a_readable_one(tmp_path, monkeypatch, capsys):
    _unset(monkeypatch, "PISTACHIO_T_FROM_FILE")
    path = _env_file(tmp_path, "PISTACHIO_T_FROM_FILE=yes\n")
    monkeypatch.setenv(ENV_FILE_VAR, str(path))
    assert env_file_path() == path
    pins = tmp_path / "pins.txt"
    pins.write_text("")
    assert main(["check-env", "--pins", str(pins)]) == 0 and os.environ["PISTACHIO_T_FROM_FILE"] == "yes"
    path.chmod(0o640)
    assert main(["check-env", "--pins", str(pins)]) == EXIT_PARAMS
    assert "readable by group/others" in capsys.readouterr().err
