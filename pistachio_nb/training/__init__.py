"""03_training: SDXL LoRA training that validates its config, resumes exactly, and exports for ComfyUI.

Reads `<workspace>/dataset/metadata.jsonl` (+ images) and writes `<workspace>/lora/`:
`<name>-step-XXXXXXXX.safetensors` (kohya keys + ss_* metadata, with a params sidecar) and
`<name>.safetensors` (the last one), `diffusers/step-XXXXXXXX/` (diffusers format), `state/` (resumable
states), `samples/step-XXXXXXXX/*.png`, `metrics.csv`, `validation.csv`, `tensorboard/`,
`checkpoints.jsonl` (the manifest 04_checkpoints reads) and `cache/` (latents, text embeddings).
"""

from ..lazy import lazy_exports

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

__getattr__ = lazy_exports(__name__, _EXPORTS)
