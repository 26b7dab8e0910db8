"""`pistachio --help`: fast (no runner import), lists the notebooks, the exit codes and examples; no raw backticks."""

import subprocess
import sys

import pytest

from pistachio_nb import runner
from pistachio_nb.cli import EXIT_TABLE, build_parser, main
from pistachio_nb.profiles import did_you_mean


def test_help_does_not_import_the_runner():
    """nbformat's validator alone costs seconds to import; `--help` must not pay for it."""
    code = ("import sys\nfrom pistachio_nb.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('pistachio_nb.runner', 'nbformat', 'pandas', 'papermill', 'requests') if m in sys.modules]\n"
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("[]"), out[-300:]


def test_help_lists_notebooks_exit_codes_examples(capsys):
    try:
        main(["--help"])
    except SystemExit as stop:
        assert stop.code == 0
    text = capsys.readouterr().out
    for name in (nb.stem for nb in runner.select_notebooks("all")):
        assert f"  {name} " in text
    assert "exit codes:" in text and "examples:" in text and "pistachio run all --params params/demo.yaml" in text
    assert "`" not in text and "added beside" not in text


def test_exit_table_matches_the_runner():
    codes = {code for code, _ in EXIT_TABLE}
    assert {runner.EXIT_OK, runner.EXIT_FAILED, runner.EXIT_PARAMS, runner.EXIT_DRIFT, runner.EXIT_LOCKED} <= codes


def test_every_option_has_help():
    import argparse

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, path + [name])
            elif action.option_strings and action.help is None:
                yield " ".join(path + action.option_strings[-1:])

    assert not list(walk(build_parser(), ["pistachio"]))


def test_did_you_mean_names_the_notebook():
    fix = did_you_mean("max_train_steps", {"01_dataset": {"repeats"}, "03_training": {"max_steps", "epochs"}})
    assert fix == "did you mean 'max_steps' (03_training)?"
    assert did_you_mean("zzz", {"03_training": {"epochs"}}).startswith("fields: 03_training: epochs")


def test_unknown_set_across_a_run_suggests():
    """A multi-notebook run checks --set keys against all its notebooks, then suggests the closest field."""
    from pistachio_nb.errors import ParamsError
    from pistachio_nb.profiles import load_profile

    notebooks = [runner.select_notebooks(name)[0] for name in ("01_dataset", "03_training")]
    with pytest.raises(ParamsError, match=r"did you mean 'max_steps' \(03_training\)"):
        runner.validate_run(notebooks, load_profile("params/demo.yaml"), {"max_train_steps": 3}, check_paths=False)
