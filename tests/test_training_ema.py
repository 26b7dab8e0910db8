"""EMA of the adapter weights: the update formula, its kohya export beside the raw one, and exact resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from pistachio_nb.errors import ParamsError
from pistachio_nb.evaluation.inputs import find_checkpoints
from pistachio_nb.models import load_sdxl_pipeline
from pistachio_nb.training import train_lora
from pistachio_nb.training.checkpoint import stale_temps
from pistachio_nb.training.ema import AdapterEma, step_decay
from tests.training_data import train_in_memory, training_params, write_tiny_dataset

EMA = {"ema_decay": 0.999, "unet_lr": 0.01}


def test_update_follows_the_warmup_formula_and_held_puts_raw_weights_back():
    param = torch.nn.Parameter(torch.zeros(2))
    ema = AdapterEma.of([param], decay=0.999, device="cpu")
    with torch.no_grad():
        param.copy_(torch.tensor([1.0, 2.0]))
    ema.update()  # d_1 = min(0.999, 2/11): shadow = 0 + 9/11 * ([1, 2] - 0)
    torch.testing.assert_close(ema.shadow[0], torch.tensor([9 / 11, 18 / 11]))
    with torch.no_grad():
        param.zero_()
    ema.update()  # d_2 = 3/12: shadow = 0.25 * shadow
    torch.testing.assert_close(ema.shadow[0], torch.tensor([9 / 44, 18 / 44]))
    with torch.no_grad():
        param.copy_(torch.tensor([5.0, -1.0]))
    with ema.held():
        torch.testing.assert_close(param.detach(), torch.tensor([9 / 44, 18 / 44]))
    assert torch.equal(param.detach(), torch.tensor([5.0, -1.0]))
    assert step_decay(0.9, 100) == 0.9 and step_decay(0.999, 100) == pytest.approx(101 / 110)


def test_ema_settings_that_cannot_work_are_refused(tmp_path):
    with pytest.raises(ParamsError, match="ema_decay below 0.9"):
        training_params(tmp_path, ema_decay=0.5)
    with pytest.raises(ParamsError, match="already averages"):
        training_params(tmp_path, ema_decay=0.999, optimizer="schedulefree_adamw")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The tiny LoRA trained 3 steps with EMA on, a checkpoint after every step, still in memory."""
    return train_in_memory(tmp_path_factory.mktemp("ema"), max_steps=3, checkpoint_every=1, validation_every=1, **EMA)


def _file(run, kind: str, step: int):
    return run.out / f"character{kind}-step-{step:08d}.safetensors"


def test_exported_ema_is_the_formula_over_the_raw_weights(trained):
    raw = [load_file(_file(trained, "", s)) for s in (1, 2, 3)]
    ema = load_file(_file(trained, "-ema", 3))
    assert ema.keys() == raw[-1].keys()
    ups = [k for k in ema if k.endswith("lora_up.weight")]  # zero at init, so the shadow starts at 0
    assert ups
    for key in ups:
        expected = torch.zeros_like(raw[0][key])
        for step, weights in enumerate(raw, start=1):
            d = step_decay(0.999, step)
            expected = d * expected + (1 - d) * weights[key]
        torch.testing.assert_close(ema[key], expected, rtol=1e-5, atol=1e-7)
        assert not torch.allclose(ema[key], raw[-1][key])  # the EMA lags the raw weights
    with safe_open(str(_file(trained, "-ema", 3)), framework="pt") as f:
        assert f.metadata()["ss_ema_decay"] == "0.999" and f.metadata()["ss_steps"] == "3"


def test_ema_file_loads_and_reproduces_the_ema_weights(trained):
    def image(pipe) -> np.ndarray:
        out = pipe("photo of ohwx woman", height=64, width=64, num_inference_steps=3, guidance_scale=5.0,
                   generator=torch.Generator().manual_seed(0), output_type="np")  # fmt: skip
        return out.images[0]

    raw = image(trained.pipe)
    with trained.ema.held():
        expected = image(trained.pipe)
    fresh = load_sdxl_pipeline(trained.p.base_model, device="cpu")
    fresh.load_lora_weights(str(_file(trained, "-ema", 3)))
    assert np.abs(raw - expected).max() > 1e-4  # the EMA draws differently from the raw LoRA ...
    np.testing.assert_allclose(image(fresh), expected, atol=1e-5)  # ... and its file reproduces it


def test_04s_default_glob_sees_the_ema_export_as_its_own_checkpoint(trained):
    found = find_checkpoints(trained.out.parent, "lora/*-step-*.safetensors")
    assert [(c.name, c.step) for c in found if c.step == 3] == [("character-ema-step-00000003", 3),
                                                                ("character-step-00000003", 3)]  # fmt: skip
    assert len(found) == 6


def test_resume_with_ema_gives_the_same_raw_and_ema_weights(tmp_path):
    for name in "ab":
        write_tiny_dataset(tmp_path / name / "dataset")
    straight = train_lora(training_params(tmp_path / "a", max_steps=4, checkpoint_every=2, **EMA))
    train_lora(training_params(tmp_path / "b", max_steps=2, checkpoint_every=2, **EMA))
    resumed = train_lora(training_params(tmp_path / "b", max_steps=4, checkpoint_every=2, resume="latest", **EMA))
    assert resumed.resumed_from is not None and resumed.final_ema.name == "character-ema.safetensors"
    assert [r["ema"] is not None for r in resumed.checkpoints] == [True, True]
    for a_file, b_file in ((straight.final_lora, resumed.final_lora), (straight.final_ema, resumed.final_ema)):
        a, b = load_file(a_file), load_file(b_file)
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
    assert any(not torch.equal(v, load_file(resumed.final_lora)[k]) for k, v in load_file(resumed.final_ema).items())


def test_stale_temps_include_ema_exports(tmp_path):
    temp = tmp_path / ".character-ema-step-00000002.safetensors.abc_12.tmp"
    temp.write_bytes(b"")
    (tmp_path / ".other-ema-step-00000002.safetensors.abc_12.tmp").write_bytes(b"")
    assert stale_temps(tmp_path, "character") == [temp]
