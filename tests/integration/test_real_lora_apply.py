"""ComfyUI 0.3.64 applies the weights training had, for every network type: the exported kohya file, patched
onto the frozen weights by ComfyUI's own `load_lora` + `calculate_weight`, equals PEFT's merged weights.

The key-mapping test (test_real_lora_keys.py) proves every key lands on a module; this one proves the numbers:
alpha / rank, LoKr's full-matrix scale and DoRA's `dora_scale` (PEFT's magnitude in ComfyUI's formula) included.
The tiny SDXL's adapters get random values (a fresh LoRA is an exact no-op, which would prove nothing).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors.torch import load_file, save_file

from pistachio_nb.models import load_sdxl_pipeline
from pistachio_nb.training.export import _kohya_module, base_weights, lora_state_dicts, network_info, save_kohya
from pistachio_nb.training.sdxl import add_adapters
from pistachio_testkit import real_comfyui

pytestmark = pytest.mark.comfyui_real
SCRIPT = Path(__file__).with_name("comfy_apply_lora.py")
RANK, ALPHA = 4, 2.0
ADAPTER_CLASS = {"lora": "LoRAAdapter", "locon": "LoRAAdapter", "dora": "LoRAAdapter", "loha": "LoHaAdapter",
                 "lokr": "LoKrAdapter"}  # fmt: skip


def randomise(unet, seed: int = 0) -> None:
    """Random adapter weights; DoRA's magnitudes scaled around their start (the base weight's row norms)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if not param.requires_grad:
                continue
            noise = torch.randn(param.shape, generator=g)
            param.copy_(param * (1 + 0.2 * noise) if "magnitude" in name else 0.1 * noise)


def frozen_and_merged(unet) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Per kohya module name: the frozen weight, and the weight PEFT's merge makes of it."""
    frozen, merged = {}, {}
    for path, layer in unet.named_modules():
        if isinstance(layer, BaseTunerLayer) and layer.merged_adapters == [] and hasattr(layer.get_base_layer(), "weight"):
            name = _kohya_module("unet", path)
            frozen[name] = layer.get_base_layer().weight.detach().clone().float()
            layer.merge()
            merged[name] = layer.get_base_layer().weight.detach().clone().float()
            layer.unmerge()
    return frozen, merged


@pytest.mark.parametrize("network_type", ["lora", "locon", "loha", "lokr", "dora"])
def test_comfyui_patches_the_frozen_weights_into_what_training_merged(network_type, comfy_install, tmp_path):
    pipe = load_sdxl_pipeline("tiny:sdxl", device="cpu")
    targets = ["to_q", "to_k", "to_v", "to_out.0"] + ([] if network_type == "lora" else ["conv1", "conv2"])
    add_adapters(pipe, RANK, ALPHA, targets, False, network_type)
    randomise(pipe.unet)
    frozen, merged = frozen_and_merged(pipe.unet)
    states = lora_state_dicts(pipe)
    lora = save_kohya(tmp_path / "lora.safetensors", states, RANK, ALPHA, torch.float32, network_info(network_type),
                      base_weights(pipe, states))  # fmt: skip
    save_file(frozen, str(tmp_path / "frozen.safetensors"))
    run = subprocess.run([str(comfy_install), str(SCRIPT), str(real_comfyui.comfy_source()), str(lora),
                          str(tmp_path / "frozen.safetensors"), str(tmp_path / "comfy.safetensors")],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    assert answer["patched"] == answer["modules"] == len(frozen) > 0 and answer["adapters"] == [ADAPTER_CLASS[network_type]]
    comfy = load_file(str(tmp_path / "comfy.safetensors"))
    worst = max(float((comfy[m] - merged[m]).abs().max()) for m in merged)
    change = min(float((merged[m] - frozen[m]).abs().max()) for m in merged)
    print(f"\n{network_type}: {len(merged)} modules, max |ComfyUI - PEFT merge| {worst:.2e}, smallest max change {change:.2e}")
    assert change > 1e-4  # every module really moved ...
    assert worst <= 1e-3 * change  # ... and ComfyUI lands where PEFT's merge does (measured: 0, DoRA 9e-8)
