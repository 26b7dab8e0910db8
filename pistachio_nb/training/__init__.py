"""03_training: SDXL LoRA training that validates its config, resumes exactly, and exports for ComfyUI.

Reads `<workspace>/dataset/metadata.jsonl` (+ images) and writes `<workspace>/lora/`:
`<name>-step-XXXXXXXX.safetensors` (kohya keys + ss_* metadata, with a params sidecar) and
`<name>.safetensors` (the last one), `diffusers/step-XXXXXXXX/` (diffusers format), `state/` (resumable
states), `samples/step-XXXXXXXX/*.png`, `metrics.csv`, `validation.csv`, `tensorboard/`,
`checkpoints.jsonl` (the manifest 04_checkpoints reads) and `cache/` (latents, text embeddings).
"""

_EXPORTS = {  # public name -> the module that defines it
    "TrainingParams": ".params",
    "TrainResult": ".train",
    "dataset_summary": ".train",
    "lora_info": ".report",
    "loss_figure": ".report",
    "sample_grid": ".report",
    "train_lora": ".train",
    "vram_plan": ".train",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    """Import a verb's module on first use, so importing the params (the profile loader does) stays light."""
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
