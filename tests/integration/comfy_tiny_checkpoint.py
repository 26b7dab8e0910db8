"""Run by ComfyUI's own python (not the project venv): a tiny SD1.5-type checkpoint ComfyUI loads and samples on CPU.

    <comfy venv python> comfy_tiny_checkpoint.py <ComfyUI source> <out dir>

ComfyUI picks the model type from the weights' shapes; SD15's match fixes only model_channels 320, context 768
and a conv proj_in, so one UNet level with one res block passes as SD1.5 (about 6 M parameters). The text
encoder must be the full CLIP-L (its config is fixed), the VAE is TAESD (~2 M). Random weights, seeded (every build is the same file): the pictures
are noise, but the same seed gives the same pixels and a LoRA changes them. Writes `tiny-sd15.safetensors`
and prints JSON: the kohya key names ComfyUI maps for this UNet's 2-D weights, with their shapes.
"""

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, sys.argv[1])
import comfy.cli_args  # noqa: E402

comfy.cli_args.args.cpu = True  # as `main.py --cpu`: no CUDA probing
import comfy.lora  # noqa: E402
import comfy.supported_models  # noqa: E402
import comfy.taesd.taesd  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel  # noqa: E402

UNET = {"use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True, "legacy": False,
        "adm_in_channels": None, "in_channels": 4, "model_channels": 320, "num_res_blocks": [1], "channel_mult": [1],
        "transformer_depth": [1], "transformer_depth_output": [1, 1], "transformer_depth_middle": 1,
        "use_linear_in_transformer": False, "context_dim": 768, "use_temporal_resblock": False,
        "use_temporal_attention": False}


def randomised(module: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    """The module's state dict with fresh random weights (ComfyUI builds its layers uninitialised)."""
    g = torch.Generator().manual_seed(0)
    out = {}
    for name, t in module.state_dict().items():
        if t.dim() == 0:  # scalars set at construction (TAESD's latent scale and shift)
            value = t.detach().float().clone()
        elif name.endswith("bias"):
            value = torch.zeros(t.shape)
        elif t.dim() == 1 or "norm" in name:
            value = torch.ones(t.shape)
        else:
            value = torch.randn(t.shape, generator=g) / max(1, t[0].numel()) ** 0.5
        out[prefix + name] = value.to(torch.float16).contiguous()
    return out


def main() -> None:
    torch.manual_seed(0)  # CLIP's own init: every build writes the same file
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    model = comfy.supported_models.SD15(UNET).get_model({}, device=torch.device("cpu"))
    sd = randomised(model.diffusion_model, "model.diffusion_model.")
    clip_config = json.loads((Path(sys.argv[1]) / "comfy" / "sd1_clip_config.json").read_text())
    clip = CLIPTextModel(CLIPTextConfig(**clip_config))
    sd.update({f"cond_stage_model.transformer.{k}": v.to(torch.float16).contiguous()
               for k, v in clip.state_dict().items() if "position_ids" not in k})
    taesd = comfy.taesd.taesd.TAESD()
    sd.update(randomised(taesd, "first_stage_model."))  # its layers are uninitialised memory too (inf/NaN: black pictures)
    save_file(sd, str(out / "tiny-sd15.safetensors"))
    names = {k: v for k, v in comfy.lora.model_lora_keys_unet(model, {}).items() if k.startswith("lora_unet_")}
    weights = model.state_dict()
    keys = {k: list(weights[v].shape) for k, v in names.items()  # kohya names of the attention projections
            if v in weights and weights[v].dim() == 2 and ".attn" in v and k == "lora_unet_" + v[16:-7].replace(".", "_")}
    print(json.dumps({"checkpoint": "tiny-sd15.safetensors", "lora_keys": keys}))


main()
