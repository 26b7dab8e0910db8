"""Values that would fail late (or never) are refused at validation, naming the field (exit 2 from the CLI)."""

from __future__ import annotations

import pytest

from pistachio_nb.cli import main
from pistachio_nb.errors import ParamsError
from pistachio_nb.profiles import load_profile, notebook_defaults
from pistachio_nb.runner import select_notebooks


def validate(notebook: str, **values):
    nb = select_notebooks(notebook)[0]
    from pistachio_nb.params import params_model_for

    return params_model_for(notebook).validate_values({**notebook_defaults(nb), **values}, check_paths=False)


@pytest.mark.parametrize("notebook, field, value, words", [
    ("03_training", "alpha", float("inf"), "alpha"),
    ("03_training", "alpha", float("nan"), "alpha"),
    ("03_training", "seed", 2**70, "seed"),
    ("03_training", "sample_seeds", [2**70], "sample_seeds"),
    ("05_inpainting", "seed", 2**70, "seed"),
    ("06_batch_generation", "base_seed", 2**70, "base_seed"),
    ("06_batch_generation", "batch_name", "..", "batch_name"),
    ("06_batch_generation", "batch_name", ".", "batch_name"),
    ("04_checkpoints", "checkpoints_glob", "../../*.safetensors", "checkpoints_glob"),
    ("04_checkpoints", "checkpoints_glob", "/etc/*", "checkpoints_glob"),
    ("04_checkpoints", "seeds", [1, 2**70], "seeds"),
])
def test_bad_value_is_refused_naming_the_field(notebook, field, value, words):
    with pytest.raises(ParamsError, match=words):
        validate(notebook, **{field: value})


def test_largest_seeds_each_rng_takes_still_pass():
    assert validate("03_training", seed=2**32 - 1).seed == 2**32 - 1  # numpy's RNG (accelerate.set_seed) is 32-bit
    assert validate("06_batch_generation", base_seed=2**64 - 1).base_seed == 2**64 - 1  # ComfyUI's seed widget max


@pytest.mark.parametrize("text, words", [
    ("", "the profile is empty"),
    ("01_dataset: false\n", "section '01_dataset' must be a mapping, got bool"),
    ("services:\n  comfyui:\n    start: a:b\n    token: abc\n", "'token' looks like a secret"),
])
def test_bad_profile_shapes_are_refused(tmp_path, text, words):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=words):
        load_profile(path)
    assert main(["run", "00_setup", "--params", str(path)]) == 2
