"""04_checkpoints params: the comparison grid, the metric models and the recommendation rule.

Defaults live only in the notebook's `parameters` cell; each description equals that line's comment.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Self

from pydantic import Field, model_validator

from ..params import NotebookParams


class CheckpointsParams(NotebookParams):
    notebook: ClassVar[str] = "04_checkpoints"

    trigger: str = Field(min_length=2, pattern=r"^\S+$", description="rare token that names the character in prompts")
    class_word: str = Field(min_length=1, description="what the character is; {character} in prompts becomes \"trigger class_word\"")
    base_model: str = Field(min_length=1, description="the SDXL base the LoRA was trained on: hub id, local folder or tiny:sdxl")
    checkpoints_glob: str = Field(min_length=1, description="glob under the workspace of the kohya LoRA files to compare")
    include_base: bool = Field(description="also generate with the base model alone, as a step-0 reference row")
    holdout_prompts: int = Field(ge=0, le=100, description="how many validation captions become prompts (the first N)")
    context_prompts: list[str] = Field(description="new-context prompts that test generalisation; {character} is filled in")
    leakage_prompts: list[str] = Field(description="prompts with the character and other people; {character} is filled in (leakage)")
    bleed_prompts: list[str] = Field(description="class prompts without the trigger; {class_word} is filled in (concept bleed)")
    seeds: list[Annotated[int, Field(ge=0, le=2**64 - 1)]] = Field(min_length=2, description="seeds per prompt; two or more, since diversity compares seeds")
    lora_scales: list[float] = Field(min_length=1, description="LoRA strengths to try, each in (0, 2]")
    width: int = Field(ge=64, le=2048, multiple_of=8, description="image width in pixels (1024 on the pod)")
    height: int = Field(ge=64, le=2048, multiple_of=8, description="image height in pixels (1024 on the pod)")
    steps: int = Field(ge=1, le=200, description="denoising steps per image (~30 on the pod)")
    guidance_scale: float = Field(ge=0, le=30, description="classifier-free guidance scale")
    negative_prompt: str = Field(description="negative prompt for every image (empty for none)")
    face_embedder: str = Field(pattern=r"^(sface|arcface(:\S+)?)$", description="sface (OpenCV YuNet + SFace, offline) or arcface:<insightface pack name or folder>")
    clip_model: str = Field(min_length=1, description="CLIP for CLIP-T and CLIP-I: hub id, local folder or tiny:clip")
    dino_model: str = Field(min_length=1, description="DINOv2 for DINO similarity, memorization and diversity")
    copy_phash_distance: int = Field(ge=0, le=64, description="pHash bits (of 64) at or below which an output copies a training image")
    copy_similarity: float = Field(gt=0, le=1, description="DINO cosine at or above which an output copies a training image (0.95 on the pod)")
    identity_tolerance: float = Field(ge=0, le=1, description="identity (cosine) below the best that still counts as having the identity")
    fidelity_drop: float = Field(ge=0, le=1, description="relative CLIP-T drop from the best checkpoint that signals overfitting")
    diversity_drop: float = Field(ge=0, le=1, description="relative seed-diversity drop from the most diverse checkpoint that signals overfitting")
    memorization_rise: float = Field(ge=0, le=1, description="share of outputs copying training images, above the lowest, that signals overfitting")
    leakage_max: float = Field(ge=0, le=1, description="share of other people's faces passing as the character that signals overfitting")
    bleed_rise: float = Field(ge=0, le=2, description="rise of class-prompt faces' cosine to the character, over the base model, that signals overfitting")
    validation_loss_csv: str = Field(description="training's validation-loss CSV under the workspace (empty for none)")
    comfy_url: str = Field(description="ComfyUI to publish the recommended LoRA into and verify it on (empty: skip publishing)")
    comfy_models_dir: str = Field(description="that ComfyUI's models folder on this machine; the LoRA goes into its loras/")
    comfy_checkpoint: str = Field(description="SDXL checkpoint as that ComfyUI lists it, for the verification renders and a comfyui grid")
    grid_backend: str = Field(pattern=r"^(local|comfyui)$", description="who draws the grid: local (diffusers; the demo, pods without ComfyUI) or comfyui (grid_workflow on comfy_url)")
    grid_workflow: str = Field(description="API-format workflow the comfyui grid fills through the .bindings.yaml beside it: a path or a template name")

    @model_validator(mode="after")
    def _grid_values(self) -> Self:
        bad = [s for s in self.lora_scales if not 0 < s <= 2]
        if bad:
            raise ValueError(f"lora_scales {bad} out of range (0, 2]")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds {self.seeds} repeat a value")
        needs = [n for n in ("grid_workflow", "comfy_url", "comfy_models_dir") if not getattr(self, n)]
        if self.grid_backend == "comfyui" and needs:
            raise ValueError(f"grid_backend comfyui needs {', '.join(needs)}: the workflow that draws the grid, "
                             "the ComfyUI that runs it and its models folder (or set grid_backend: local)")
        if self.holdout_prompts == 0 and not self.context_prompts:
            raise ValueError("no prompts: holdout_prompts is 0 and context_prompts is empty")
        for name in ("checkpoints_glob", "validation_loss_csv"):
            value = getattr(self, name)
            if value.startswith(("/", "\\")) or ".." in value.replace("\\", "/").split("/"):
                raise ValueError(f"{name} {value!r} must stay inside the workspace (no absolute path, no '..')")
        return self
