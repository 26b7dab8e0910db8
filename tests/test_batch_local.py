"""The local backend: the same batch interface on the tiny SDXL pipeline with a peft LoRA."""

import json

import pytest
import torch
from PIL import Image

from pistachio_nb.batch import run_batch
from pistachio_nb.models import resolve_model
from pistachio_nb.batch import BatchParams


@pytest.fixture(scope="module")
def lora_file(tmp_path_factory):
    """A LoRA with random (non-zero) weights on the tiny UNet's attention, saved like diffusers does."""
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from peft import LoraConfig, get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(resolve_model("tiny:sdxl"), subfolder="unet")
    torch.manual_seed(0)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    folder = tmp_path_factory.mktemp("lora")
    StableDiffusionXLPipeline.save_lora_weights(folder, unet_lora_layers=get_peft_model_state_dict(unet),
                                                weight_name="character.safetensors")
    return folder / "character.safetensors"


def test_local_batch_with_lora(tmp_path, lora_file):
    (tmp_path / "prompts.yaml").write_text(
        "- {prompt: pstchio character, seeds: [1], lora_strength: 0.0}\n"
        "- {prompt: pstchio character, seeds: [1], lora_strength: 1.0}\n"
        "- {prompt: pstchio character, seeds: [2], lora_strength: 1.0}\n")
    p = BatchParams(
        workspace=tmp_path / "ws", prompts_file=tmp_path / "prompts.yaml", batch_name="local", backends=["local"],
        servers=[], workflow="txt2img_lora", comfy_checkpoint="", comfy_lora="", model="tiny:sdxl", lora=str(lora_file),
        negative="", count=1, base_seed=0, lora_strength=1.0, width=64, height=64, steps=2, cfg=3.0, jobs_per_server=1,
        retries=0, backoff_seconds=0, job_timeout_seconds=60, request_timeout_seconds=5)
    result = run_batch(p)
    assert result.table["state"].tolist() == ["done"] * 3 and set(result.table["backend"]) == {"local"}
    images = [Image.open(path) for path in result.images()]
    assert all(im.size == (64, 64) for im in images)
    pixels = [im.convert("RGB").tobytes() for im in images]
    assert pixels[0] != pixels[1]  # the LoRA strength changes the picture
    assert pixels[1] != pixels[2]  # so does the seed
    meta = json.loads(images[2].text["pistachio"])
    assert (meta["seed"], meta["backend"], meta["lora"]) == (2, "local", str(lora_file))
    assert "Seed: 2" in images[2].text["parameters"]
    assert run_batch(p).summary.loc["skipped", "jobs"] == 3
