"""03_training: SDXL LoRA training that validates its config, resumes exactly, and exports for ComfyUI.

Reads `<workspace>/dataset/metadata.jsonl` (+ images) and writes `<workspace>/lora/`:
`<name>-step-XXXXXXXX.safetensors` (kohya keys + ss_* metadata, with a params sidecar) and
`<name>.safetensors` (the last one), `diffusers/step-XXXXXXXX/` (diffusers format), `state/` (resumable
states), `samples/step-XXXXXXXX/*.png`, `metrics.csv`, `validation.csv`, `tensorboard/`,
`checkpoints.jsonl` (the manifest 04_checkpoints reads) and `cache/` (latents, text embeddings).
"""

from .report import lora_info, loss_figure, sample_grid
from .train import TrainResult, dataset_summary, train_lora, vram_plan

__all__ = ["TrainResult", "dataset_summary", "lora_info", "loss_figure", "sample_grid", "train_lora", "vram_plan"]
