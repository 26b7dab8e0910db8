"""Run by ComfyUI's own python (not the project venv): map a kohya LoRA file's keys with ComfyUI's key maps.

    <comfy venv python> comfy_lora_keys.py <ComfyUI source> <unet-shapes.json> <lora.safetensors>

Builds ComfyUI's SDXL model and SDXL CLIP on the meta device (no weights), detecting the UNet
config from the diffusers key shapes given, then prints JSON: key counts, modules ComfyUI patched,
and every key it would log as "lora key not loaded".
"""

import json
import logging
import sys

import torch

sys.path.insert(0, sys.argv[1])
import comfy.cli_args  # noqa: E402

comfy.cli_args.args.cpu = True  # as `main.py --cpu`: no CUDA probing
import comfy.lora  # noqa: E402
import comfy.model_detection  # noqa: E402
import comfy.sdxl_clip  # noqa: E402
from safetensors.torch import load_file  # noqa: E402


class Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.not_loaded = []

    def emit(self, record):
        message = record.getMessage()
        if message.startswith("lora key not loaded: "):
            self.not_loaded.append(message.split(": ", 1)[1])


def main():
    shapes = json.load(open(sys.argv[2]))
    unet_sd = {k: torch.empty(v, device="meta") for k, v in shapes.items()}
    config = comfy.model_detection.model_config_from_diffusers_unet(unet_sd)
    model = config.get_model({}, device=torch.device("meta"))
    clip = comfy.sdxl_clip.SDXLClipModel(device=torch.device("meta"))
    key_map = comfy.lora.model_lora_keys_clip(clip, comfy.lora.model_lora_keys_unet(model, {}))
    lora = load_file(sys.argv[3])
    collect = Collect()
    logging.getLogger().addHandler(collect)
    patches = comfy.lora.load_lora(lora, key_map)
    print(json.dumps({"model": type(model).__name__, "keys": len(lora), "patched_modules": len(patches),
                      "not_loaded": collect.not_loaded}))


main()
