"""The `/object_info` the test server serves: ComfyUI's core node classes our workflows use, same JSON shape.

Input specs follow ComfyUI 0.3.64 (`[TYPE, {default, min, max, step}]`, combos as a list of choices);
model combos list the server's model files, so a missing checkpoint or LoRA fails validation as on a pod.
"""

from __future__ import annotations

from typing import Any

MAX_RESOLUTION = 16384
SAMPLERS = ["euler", "euler_ancestral", "heun", "dpm_2", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_sde", "ddim", "uni_pc", "lcm"]
SCHEDULERS = ["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal"]
HIDDEN_SAVE = {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}


def _int(default: int, lo: int, hi: int, step: int = 1, **extra: Any) -> list:
    return ["INT", {"default": default, "min": lo, "max": hi, "step": step, **extra}]


def _float(default: float, lo: float, hi: float, step: float = 0.01, **extra: Any) -> list:
    return ["FLOAT", {"default": default, "min": lo, "max": hi, "step": step, **extra}]


def _node(name: str, display: str, category: str, required: dict[str, list], outputs: list[str] = (),
          output_node: bool = False, hidden: dict[str, str] | None = None, description: str = "") -> dict[str, Any]:
    inputs: dict[str, Any] = {"required": required}
    order: dict[str, list[str]] = {"required": list(required)}
    if hidden:
        inputs["hidden"], order["hidden"] = hidden, list(hidden)
    return {
        "input": inputs, "input_order": order, "output": list(outputs), "output_is_list": [False] * len(outputs),
        "output_name": list(outputs), "name": name, "display_name": display, "description": description,
        "python_module": "nodes", "category": category, "output_node": output_node,
    }


def object_info(models: dict[str, list[str]], input_files: list[str]) -> dict[str, Any]:
    """Node class -> its object_info entry, with model and input-image combos filled from the server's files."""
    ckpts, loras = sorted(models.get("checkpoints", [])), sorted(models.get("loras", []))
    nodes = [
        _node("CheckpointLoaderSimple", "Load Checkpoint", "loaders", {"ckpt_name": [ckpts, {}]},
              ["MODEL", "CLIP", "VAE"], description="Loads a diffusion model checkpoint."),
        _node("LoraLoader", "Load LoRA", "loaders", {
            "model": ["MODEL", {}], "clip": ["CLIP", {}], "lora_name": [loras, {}],
            "strength_model": _float(1.0, -100.0, 100.0), "strength_clip": _float(1.0, -100.0, 100.0),
        }, ["MODEL", "CLIP"]),
        _node("CLIPTextEncode", "CLIP Text Encode (Prompt)", "conditioning", {
            "text": ["STRING", {"multiline": True, "dynamicPrompts": True}], "clip": ["CLIP", {}],
        }, ["CONDITIONING"]),
        _node("EmptyLatentImage", "Empty Latent Image", "latent", {
            "width": _int(512, 16, MAX_RESOLUTION, 8), "height": _int(512, 16, MAX_RESOLUTION, 8),
            "batch_size": _int(1, 1, 4096),
        }, ["LATENT"]),
        _node("KSampler", "KSampler", "sampling", {
            "model": ["MODEL", {}], "seed": _int(0, 0, 0xFFFFFFFFFFFFFFFF, control_after_generate=True),
            "steps": _int(20, 1, 10000), "cfg": _float(8.0, 0.0, 100.0, 0.1, round=0.01),
            "sampler_name": [SAMPLERS, {}], "scheduler": [SCHEDULERS, {}],
            "positive": ["CONDITIONING", {}], "negative": ["CONDITIONING", {}],
            "latent_image": ["LATENT", {}], "denoise": _float(1.0, 0.0, 1.0),
        }, ["LATENT"]),
        _node("VAEDecode", "VAE Decode", "latent", {"samples": ["LATENT", {}], "vae": ["VAE", {}]}, ["IMAGE"]),
        _node("VAEEncode", "VAE Encode", "latent", {"pixels": ["IMAGE", {}], "vae": ["VAE", {}]}, ["LATENT"]),
        _node("SetLatentNoiseMask", "Set Latent Noise Mask", "latent/inpaint",
              {"samples": ["LATENT", {}], "mask": ["MASK", {}]}, ["LATENT"]),
        _node("LoadImage", "Load Image", "image", {"image": [sorted(input_files), {"image_upload": True}]},
              ["IMAGE", "MASK"]),
        _node("EmptyImage", "EmptyImage", "image", {
            "width": _int(512, 1, MAX_RESOLUTION), "height": _int(512, 1, MAX_RESOLUTION),
            "batch_size": _int(1, 1, 4096), "color": _int(0, 0, 0xFFFFFF, display="color"),
        }, ["IMAGE"]),
        _node("ImageInvert", "Invert Image", "image", {"image": ["IMAGE", {}]}, ["IMAGE"]),
        _node("ImageToMask", "Convert Image to Mask", "mask",
              {"image": ["IMAGE", {}], "channel": [["red", "green", "blue", "alpha"], {}]}, ["MASK"]),
        _node("SaveImage", "Save Image", "image", {
            "images": ["IMAGE", {"tooltip": "The images to save."}],
            "filename_prefix": ["STRING", {"default": "ComfyUI", "tooltip": "The prefix for the file to save."}],
        }, output_node=True, hidden=HIDDEN_SAVE, description="Saves the input images to your ComfyUI output directory."),
        _node("PreviewImage", "Preview Image", "image", {"images": ["IMAGE", {}]}, output_node=True,
              hidden=HIDDEN_SAVE, description="Saves the input images to your ComfyUI temp directory."),
    ]
    return {n["name"]: n for n in nodes}
