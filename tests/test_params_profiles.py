"""Params models and profiles: unknown keys, wrong types and out-of-range values are refused by name."""

import subprocess
import sys

import pytest

from pistachio_nb.errors import ParamsError
from pistachio_nb.params import all_params_models, params_model_for
from pistachio_nb.pod import SetupParams
from pistachio_nb.profiles import load_profile, notebook_defaults, parse_sets, resolve_values
from pistachio_nb.runner import select_notebooks

from .conftest import ROOT

GOOD = notebook_defaults(ROOT / "notebooks" / "00_setup.ipynb")


def test_from_namespace_picks_fields_and_ignores_other_globals():
    p = SetupParams.from_namespace({**GOOD, "np": object(), "_": 3})
    assert p.fail_on_drift is GOOD["fail_on_drift"] and str(p.workspace) == GOOD["workspace"]


def test_wrong_type_names_field_and_value():
    with pytest.raises(ParamsError) as err:
        SetupParams.from_namespace({**GOOD, "fail_on_drift": "sometimes"})
    assert "fail_on_drift" in str(err.value) and "sometimes" in str(err.value)


def test_missing_field_is_named():
    with pytest.raises(ParamsError, match="pins_file"):
        SetupParams.validate_values({"workspace": "w", "fail_on_drift": True})


def test_unknown_field_is_refused():
    with pytest.raises(ParamsError, match="no_such_field.*unknown parameter"):
        SetupParams.validate_values({**GOOD, "no_such_field": 1}, "params/demo.yaml [00_setup]")


def test_every_notebook_has_a_params_model():
    names = {nb.stem for nb in select_notebooks("all")}
    assert names <= set(all_params_models()), names - set(all_params_models())


def _profile(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_profile_unknown_section_key_names_file_section_field(tmp_path):
    path = _profile(tmp_path, "common:\n  workspace: w\n00_setup:\n  pins_fiel: x\n")
    with pytest.raises(ParamsError) as err:
        resolve_values(ROOT / "notebooks/00_setup.ipynb", load_profile(path), {})
    assert str(path) in str(err.value) and "[00_setup]" in str(err.value) and "pins_fiel" in str(err.value)


def test_profile_wrong_type_names_file_section_field(tmp_path):
    path = _profile(tmp_path, "00_setup:\n  fail_on_drift: [1, 2]\n")
    with pytest.raises(ParamsError) as err:
        resolve_values(ROOT / "notebooks/00_setup.ipynb", load_profile(path), {})
    assert str(path) in str(err.value) and "fail_on_drift" in str(err.value)


def test_profile_unknown_common_key_and_section(tmp_path):
    with pytest.raises(ParamsError, match="common.*colour"):
        load_profile(_profile(tmp_path, "common:\n  colour: red\n"))
    with pytest.raises(ParamsError, match="unknown section '99_nothing'"):
        load_profile(_profile(tmp_path, "99_nothing:\n  a: 1\n"))


def test_profile_refuses_secret_looking_keys(tmp_path):
    with pytest.raises(ParamsError, match="hf_token.*environment"):
        load_profile(_profile(tmp_path, "00_setup:\n  hf_token: abc\n"))
    with pytest.raises(ParamsError, match="civitai_api_key"):
        parse_sets(["civitai_api_key=abc"])
    assert parse_sets(["max_new_tokens=5", "tokenizer_model=x"]) == {"max_new_tokens": 5, "tokenizer_model": "x"}


def test_sets_are_yaml_scalars_and_must_have_equals():
    assert parse_sets(["a=3", "b=true", "c=[1, 2]", "d=text"]) == {"a": 3, "b": True, "c": [1, 2], "d": "text"}
    with pytest.raises(ParamsError, match="key=value"):
        parse_sets(["novalue"])


def test_shipped_profiles_validate_for_every_notebook():
    for profile_name in ("demo", "pod"):
        profile = load_profile(ROOT / "params" / f"{profile_name}.yaml")
        for nb in select_notebooks("all"):
            _, params = resolve_values(nb, profile, {}, check_paths=False)  # the pod's folders exist on the pod only
            assert isinstance(params, params_model_for(nb.stem))


def test_cli_set_unknown_field_exits_nonzero_naming_it():
    proc = subprocess.run(
        [sys.executable, "-m", "pistachio_nb.cli", "run", "00_setup", "--params", "params/demo.yaml",
         "--set", "no_such_field=1"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "no_such_field" in proc.stderr
