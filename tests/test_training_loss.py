"""The objective's pieces: min-SNR weights, v-prediction targets, offset noise, fixed validation noise, step counts."""

from __future__ import annotations

import torch
from diffusers import DDPMScheduler

from pistachio_nb.training.data import load_dataset
from pistachio_nb.training.features import Batch
from pistachio_nb.training.loop import steps_per_epoch, total_steps
from pistachio_nb.training.loss import make_noise, min_snr_weights, snr, target_for
from tests.training_data import training_params, write_tiny_dataset


def _scheduler(kind: str) -> DDPMScheduler:
    return DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type=kind)


def test_min_snr_weights_follow_the_paper():
    t = torch.tensor([10, 500, 990])
    for kind, denominator in (("epsilon", lambda s: s), ("v_prediction", lambda s: s + 1)):
        sched = _scheduler(kind)
        s = snr(sched, t)
        expected = torch.minimum(s, torch.tensor(5.0)) / denominator(s)
        torch.testing.assert_close(min_snr_weights(sched, t, 5.0), expected)
    weights = min_snr_weights(_scheduler("epsilon"), t, 5.0)
    assert weights[0] < 0.1 and weights[2] == 1.0  # easy low-noise steps are damped, hard ones kept


def test_targets_per_prediction_type():
    latents, noise, t = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8), torch.tensor([100, 800])
    assert torch.equal(target_for(_scheduler("epsilon"), latents, noise, t), noise)
    v = _scheduler("v_prediction")
    torch.testing.assert_close(target_for(v, latents, noise, t), v.get_velocity(latents, noise, t))


def test_offset_noise_adds_a_per_channel_constant():
    latents = torch.zeros(2, 4, 8, 8)
    plain = make_noise(latents, torch.Generator().manual_seed(0), 0.0)
    offset = make_noise(latents, torch.Generator().manual_seed(0), 0.5)
    shift = offset - plain
    assert shift.abs().max() > 0
    torch.testing.assert_close(shift, shift[:, :, :1, :1].expand_as(shift))


def test_step_count_from_epochs(tmp_path):
    write_tiny_dataset(tmp_path / "dataset", n_train=5, n_val=0, repeats=3)
    p = training_params(tmp_path, max_steps=0, epochs=2, batch_size=2, gradient_accumulation=2)
    data = load_dataset(p.ws.dataset, p.resolution)
    assert steps_per_epoch(data, p) == 4  # 5 images x 3 repeats -> 8 batches of <= 2 -> 4 steps of 2 micro-batches
    assert total_steps(data, p) == 2 * steps_per_epoch(data, p)


def test_validation_loss_is_deterministic():
    from pistachio_nb.training.loss import validation_loss

    unet = lambda x, t, emb, added_cond_kwargs: type("O", (), {"sample": x * 0.5})()  # noqa: E731
    batch = Batch(torch.randn(1, 4, 8, 8), torch.zeros(1, 77, 64), torch.zeros(1, 32), torch.zeros(1, 6))
    sched = _scheduler("epsilon")
    assert validation_loss(unet, sched, batch, seed=1) == validation_loss(unet, sched, batch, seed=1)
    assert validation_loss(unet, sched, batch, seed=1) != validation_loss(unet, sched, batch, seed=2)
