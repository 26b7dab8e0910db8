"""Profiles (and every YAML file read through `read_yaml`) as an attack surface: alias bombs, huge
files, duplicate keys, non-UTF-8 bytes and deep nesting all end in a short ParamsError (exit 2), fast."""

import resource
import time

import pytest

from pistachio_nb.cli import main
from pistachio_nb.errors import InputDataError, ParamsError
from pistachio_nb.files import read_yaml
from pistachio_nb.profiles import load_profile, parse_sets, resolve_values
from pistachio_nb.runner import EXIT_PARAMS, select_notebooks

BOMB = "\n".join(["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
                 + [f"a{i}: &a{i} [*a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}]"
                    for i in range(1, 9)])
PROFILES = {
    "bomb": "common:\n  workspace: w\n00_setup:\n  pins_file:\n" + "\n".join("    " + line for line in BOMB.splitlines())
            + "\n    last: *a8\n",
    "dupe": "common:\n  workspace: outputs/a\n00_setup:\n  fail_on_drift: true\ncommon:\n  workspace: outputs/b\n",
    "deep": "00_setup:\n  fail_on_drift: " + "[" * 20000 + "]" * 20000 + "\n",
}


def _fast(fn, *args):
    """Run fn, which must raise ParamsError, within 2 s; return the message."""
    start = time.perf_counter()
    with pytest.raises(ParamsError) as err:
        fn(*args)
    assert time.perf_counter() - start < 2.0
    return str(err.value)


@pytest.mark.parametrize("kind", sorted(PROFILES))
def test_hostile_profile_is_a_short_params_error(tmp_path, kind):
    path = tmp_path / f"{kind}.yaml"
    path.write_text(PROFILES[kind], encoding="utf-8")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    msg = _fast(load_profile, path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 200_000  # KiB: no expansion in memory
    assert str(path) in msg and len(msg) < 1000
    assert {"bomb": "aliases", "dupe": "duplicate key 'common'", "deep": "nested deeper"}[kind] in msg


def test_duplicate_key_names_the_key_and_both_lines(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(PROFILES["dupe"], encoding="utf-8")
    assert "line 5: duplicate key 'common' (first at line 1)" in _fast(load_profile, path)


def test_non_utf8_profile_names_the_byte(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_bytes(b"common:\n  workspace: caf\xe9\n")
    msg = _fast(load_profile, path)
    assert "not UTF-8" in msg and "line 2" in msg


def test_oversized_profile_is_not_read_whole(tmp_path):
    path = tmp_path / "big.yaml"
    with path.open("wb") as fh:  # sparse: 300 MB on paper, nothing on disk
        fh.truncate(300 * 2**20)
    msg = _fast(load_profile, path)
    assert "larger than 1024 KiB" in msg


def test_other_yaml_inputs_get_the_same_checks_with_their_own_error(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text("models: &m []\nother: *m\n", encoding="utf-8")
    with pytest.raises(InputDataError, match="aliases"):
        read_yaml(path, InputDataError, "models manifest")


def test_plain_profiles_still_load():
    assert load_profile(select_notebooks("00_setup")[0].parents[1] / "params" / "demo.yaml").sections


def test_set_value_alias_bomb_is_refused():
    msg = _fast(parse_sets, ["fail_on_drift=[&a [x, x], *a, *a]"])
    assert "fail_on_drift" in msg and "aliases" in msg


def test_long_invalid_value_is_quoted_short(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("00_setup:\n  fail_on_drift: " + "y" * 500_000 + "\n", encoding="utf-8")
    profile = load_profile(path)
    msg = _fast(resolve_values, select_notebooks("00_setup")[0], profile, {})
    assert "fail_on_drift" in msg and len(msg) < 2000


@pytest.mark.parametrize("kind", sorted(PROFILES))
def test_cli_exits_2_on_hostile_profile(tmp_path, capsys, kind):
    path = tmp_path / f"{kind}.yaml"
    path.write_text(PROFILES[kind], encoding="utf-8")
    start = time.perf_counter()
    assert main(["models", "--params", str(path)]) == EXIT_PARAMS
    assert time.perf_counter() - start < 3.0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err) < 1000


def test_cli_exits_2_on_non_utf8_and_huge(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe\x00junk")
    big = tmp_path / "big.yaml"
    with big.open("wb") as fh:
        fh.truncate(300 * 2**20)
    assert main(["run", "00_setup", "--params", str(bad)]) == EXIT_PARAMS
    assert main(["models", "--params", str(big)]) == EXIT_PARAMS
    assert "not UTF-8" in capsys.readouterr().err
