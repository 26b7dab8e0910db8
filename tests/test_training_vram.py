"""The VRAM planner: cached encoders still count (they stay on the GPU), and adapters are counted per network type."""

from __future__ import annotations

import pytest

from pistachio_nb.errors import ParamsError
from pistachio_nb.models import resolve_model
from pistachio_nb.training import vram_plan
from pistachio_nb.training.sdxl import TEXT_ENCODER_TARGETS
from pistachio_nb.training.vram import meta_counts, plan_vram
from tests.training_data import training_params, write_tiny_dataset

POD_COUNTS = {"unet": 2_567_463_684, "vae": 83_653_863, "text_encoder": 123_060_480, "text_encoder_2": 694_659_841,
              "lora_unet": 23_000_000, "lora_text_encoders": 0}  # SDXL base 1.0's parameter counts  # fmt: skip
POD = dict(resolution=1024, batch_size=2, mixed_precision="bf16", gradient_checkpointing=True,
           train_text_encoder=False, optimizer="adamw8bit", gpu_gb=24.0)  # fmt: skip


def test_caching_no_longer_frees_the_encoders_in_the_plan():
    cached = plan_vram(POD_COUNTS, cache_latents=True, cache_text_embeddings=True, **POD)
    uncached = plan_vram(POD_COUNTS, cache_latents=False, cache_text_embeddings=False, **POD)
    assert cached.total_gb == uncached.total_gb  # caching saves compute; the encoders stay for sampling
    rows = cached.table.set_index("component")["GB"]
    encoders = (POD_COUNTS["text_encoder"] + POD_COUNTS["text_encoder_2"]) * 2 + POD_COUNTS["vae"] * 4
    assert rows["text encoders"] + rows["VAE (fp32)"] == pytest.approx(encoders / 1024**3, abs=2e-3)  # ~1.83 GB
    assert "uncalibrated" in cached.table.iloc[-1]["assumption"]


@pytest.mark.parametrize("network_type,targets", [("lora", ["to_q", "to_v"]), ("locon", ["to_q", "conv1"]),
                                                  ("loha", ["to_q", "conv1"]), ("lokr", ["to_q", "conv1"]),
                                                  ("dora", ["to_q", "conv1"])])  # fmt: skip
def test_adapter_counts_match_the_modules_peft_builds(network_type, targets):
    from pistachio_nb.models import load_sdxl_pipeline
    from pistachio_nb.training.sdxl import add_adapters, trainable_parameters

    counts = meta_counts(resolve_model("tiny:sdxl"), 4, targets, TEXT_ENCODER_TARGETS, network_type)
    trained = add_adapters(load_sdxl_pipeline("tiny:sdxl", device="cpu"), 4, 2.0, targets, True, network_type)
    assert counts["lora_unet"] == sum(p.numel() for p in trainable_parameters(trained[:1])) > 0
    assert counts["lora_text_encoders"] == sum(p.numel() for p in trainable_parameters(trained[1:]))


def test_network_type_must_agree_with_the_layers_it_adapts(tmp_path):
    write_tiny_dataset(tmp_path / "dataset")
    with pytest.raises(ParamsError, match=r"\['conv1'\] are Conv2d.*'lora'.*") as err:
        vram_plan(training_params(tmp_path, network_type="lora", target_modules=["to_q", "conv1"]))
    assert "locon" in err.value.fix
    with pytest.raises(ParamsError, match="'locon' with no Conv2d layer"):
        vram_plan(training_params(tmp_path, network_type="locon", target_modules=["to_q"]))


def test_an_ema_copy_on_the_gpu_is_counted_and_one_on_the_cpu_is_not():
    cpu = plan_vram(POD_COUNTS, cache_latents=True, cache_text_embeddings=True, **POD)
    gpu = plan_vram(POD_COUNTS, cache_latents=True, cache_text_embeddings=True, ema_on_gpu=True, **POD)
    assert gpu.total_gb - cpu.total_gb == pytest.approx(POD_COUNTS["lora_unet"] * 4 / 1024**3, abs=2e-3)
    assert "EMA copy (fp32)" in set(gpu.table["component"]) - set(cpu.table["component"])
