"""One pydantic model per notebook: types, ranges and cross-field rules for its parameters.

Defaults live in exactly one place: each notebook's `parameters` cell. The models here declare
no defaults, so a field missing from a notebook is an error, and tests check the cell and the
model name the same fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ParamsError
from .paths import Workspace, resolve


def describe_validation_error(err: ValidationError, where: str) -> str:
    """Turn pydantic's error list into lines naming the field, the problem and the value given."""
    lines = [f"invalid parameters in {where}:"]
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "(model)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown parameter (typo? not a field of this notebook)"
        given = "" if e["type"] in ("missing", "extra_forbidden") else f" (got {e.get('input')!r})"
        lines.append(f"  - {field}: {msg}{given}")
    return "\n".join(lines)


class NotebookParams(BaseModel):
    """Base for every notebook's params: unknown keys are errors; values are frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    notebook: ClassVar[str] = ""

    workspace: Path = Field(description="character workspace folder; every stage reads/writes below it")

    @classmethod
    def validate_values(cls, values: Mapping[str, Any], where: str = "") -> Self:
        """Validate a dict of values; raise ParamsError naming `where` (file/section) and each bad field."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as err:
            raise ParamsError(
                describe_validation_error(err, where or f"notebook {cls.notebook}"),
                fix="edit the named field in the parameters cell or the params profile",
            ) from None

    @classmethod
    def from_namespace(cls, namespace: Mapping[str, Any]) -> Self:
        """Pick this notebook's fields from the notebook's globals() and validate them."""
        values = {name: namespace[name] for name in cls.model_fields if name in namespace}
        return cls.validate_values(values, f"the parameters cell of {cls.notebook}")

    @property
    def ws(self) -> Workspace:
        """The workspace folder, resolved against the repo root and created."""
        root = resolve(self.workspace)
        root.mkdir(parents=True, exist_ok=True)
        return Workspace(root)


# --------------------------------------------------------------------------- 00_setup


class SetupParams(NotebookParams):
    notebook: ClassVar[str] = "00_setup"

    pins_file: Path = Field(description="requirements file the drift check compares against")
    fail_on_drift: bool = Field(description="stop the notebook when installed versions drift from pins")
    # pod health, model downloads, workflows (health.py, downloads.py, workflow_convert.py)
    comfy_url: str = Field(pattern=r"^https?://[^/\s]+", description="ComfyUI base URL, e.g. http://127.0.0.1:8188")
    comfy_timeout_s: float = Field(gt=0, le=300, description="seconds each ComfyUI request may take")
    required_node_classes: list[str] = Field(description="node classes /object_info must have (workflow classes are added)")
    comfy_models_dir: Path = Field(description="ComfyUI's models folder (checkpoints/, loras/, ...)")
    comfy_output_dir: Path = Field(description="ComfyUI's output folder (must be writable)")
    required_models: list[str] = Field(description="'folder/file' below comfy_models_dir that must exist (manifest files are added)")
    models_manifest: Path | None = Field(description="YAML manifest of models to download and verify; null for none")
    workflows_dir: Path = Field(description="where pulled workflows go (pistachio_nb/workflows to version them)")
    require_gpu: bool = Field(description="a missing CUDA GPU is a FAIL (pod) rather than a WARN (demo)")
    min_free_gb: float = Field(ge=0, description="free disk (GiB) below which the workspace/models volume FAILs")

    @model_validator(mode="after")
    def _model_paths(self) -> Self:
        bad = [m for m in self.required_models if "/" not in m.strip("/") or ".." in m.split("/")]
        if bad:
            raise ValueError(f"required_models entries must look like 'loras/file.safetensors', got {bad}")
        return self


# --------------------------------------------------------------------------- 01_dataset


class DatasetParams(NotebookParams):
    notebook: ClassVar[str] = "01_dataset"

    source_dir: Path = Field(description="folder of the character's source images (read only, searched recursively)")
    trigger: str = Field(min_length=2, pattern=r"^\S+$", description="rare token that will name the character")
    class_word: str = Field(min_length=1, pattern=r"^[^/\\]+$", description="what the character is (woman, man, dog...)")
    repeats: int = Field(ge=1, le=1000, description="kohya repeats: times each image is seen per epoch")
    dedup_algorithm: Literal["phash", "dhash", "ahash", "whash"] = Field(description="imagehash perceptual hash")
    dedup_threshold: int = Field(ge=0, le=32, description="max Hamming distance (bits of 64) for near-duplicates")
    min_side: int = Field(ge=8, description="refuse images whose shorter side is below this (pixels)")
    max_pixels: int = Field(ge=64 * 64, description="refuse images above this many pixels (decompression bombs)")
    alpha_background: str = Field(description="colour transparent pixels become: a name (white) or #rrggbb")
    blur_threshold: float = Field(ge=0, description="flag images whose Laplacian variance is below this")
    validation_ratio: float = Field(ge=0, le=0.5, description="share of clusters held out for validation")
    split_seed: int = Field(ge=0, description="seed of the deterministic split")
    base_resolution: int = Field(ge=64, le=2048, multiple_of=64, description="bucket base side (1024 for SDXL)")
    workers: int = Field(ge=0, le=256, description="processes for decoding (0 = all cores)")

    @model_validator(mode="after")
    def _sizes_consistent(self) -> Self:
        from PIL import ImageColor

        try:
            ImageColor.getrgb(self.alpha_background)
        except ValueError:
            raise ValueError(f"alpha_background {self.alpha_background!r} is not a colour (try white or #ffffff)") from None
        if self.min_side * self.min_side > self.max_pixels:
            raise ValueError(f"min_side {self.min_side} squared exceeds max_pixels {self.max_pixels}")
        return self


# --------------------------------------------------------------------------- 02_captioning


FLORENCE_CAPTION_TASKS = ("<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>")
TEMPLATE_FIELDS = ("class_word", "orientation")


class CaptioningParams(NotebookParams):
    notebook: ClassVar[str] = "02_captioning"

    trigger: str = Field(min_length=2, pattern=r"^\S+$", description="rare token that names the character; first in every caption")
    class_word: str = Field(min_length=1, description="what the character is (woman, man, dog...)")
    captioner: Literal["florence2", "blip2", "blip", "template"] = Field(description="which captioner writes the captions")
    caption_model: str = Field(description="captioner model: hub id, local folder or tiny:captioner (unused by template)")
    task_prompt: str = Field(description="Florence-2 task token, or a BLIP/BLIP-2 text prompt ('' for none)")
    batch_size: int = Field(ge=1, le=256, description="images per generate() call")
    max_caption_length: int = Field(ge=1, le=1024, description="longest caption the model may write (max_new_tokens, in its own tokens)")
    num_beams: int = Field(ge=1, le=16, description="beam search width (1 = greedy)")
    template: str = Field(min_length=1, description="template caption; may use {class_word} and {orientation}")
    fallback: Literal["none", "template"] = Field(description="when the model cannot load: stop (none) or write template captions")
    strip_phrases: list[str] = Field(description="phrases removed from model captions (traits the trigger should absorb)")
    replacements: dict[str, str] = Field(description="phrase -> replacement applied to model captions")
    overwrite: bool = Field(description="replace existing captions (the old text is backed up first)")
    base_model: str = Field(min_length=1, description="SDXL base whose CLIP tokenizer counts caption tokens: hub id, folder or tiny:sdxl")
    preview_count: int = Field(ge=0, le=24, description="images shown in the sample grid")
    find_text: str = Field(description="bulk edit: text to find in every caption ('' = no bulk edit)")
    replace_text: str = Field(description="bulk edit: what replaces find_text")
    apply_find_replace: bool = Field(description="write the bulk edit (false = preview only)")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.captioner == "florence2" and self.task_prompt not in FLORENCE_CAPTION_TASKS:
            raise ValueError(f"task_prompt {self.task_prompt!r} is not a Florence-2 caption task; use one of {FLORENCE_CAPTION_TASKS}")
        try:
            self.template.format(**dict.fromkeys(TEMPLATE_FIELDS, ""))
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"template {self.template!r}: bad placeholder {err}; allowed: {TEMPLATE_FIELDS}") from None
        if any(not s.strip() for s in [*self.strip_phrases, *self.replacements]):
            raise ValueError("strip_phrases and replacements keys must not be empty strings")
        if self.trigger.lower() in (s.strip().lower() for s in self.strip_phrases):
            raise ValueError(f"strip_phrases contains the trigger {self.trigger!r}")
        if self.apply_find_replace and not self.find_text:
            raise ValueError("apply_find_replace is true but find_text is empty")
        return self


# --------------------------------------------------------------------------- 03_training


class TrainingParams(NotebookParams):
    """SDXL LoRA training. Static contradictions are refused here; device-dependent ones in training.config."""

    notebook: ClassVar[str] = "03_training"

    base_model: str = Field(min_length=1, description="SDXL base: hub id, local folder or tiny:sdxl")
    resolution: int = Field(ge=64, le=2048, multiple_of=8, description="bucket base side the dataset was built at")
    rank: int = Field(ge=1, le=256, description="LoRA rank (dim)")
    alpha: float = Field(gt=0, description="LoRA alpha; the update is scaled by alpha/rank")
    target_modules: list[str] = Field(min_length=1, description="UNet linear layers that get LoRA adapters")
    train_text_encoder: bool = Field(description="also train LoRA adapters on both text encoders")
    unet_lr: float = Field(gt=0, le=1, description="UNet LoRA learning rate")
    text_encoder_lr: float = Field(ge=0, le=1, description="text-encoder LoRA learning rate")
    lr_scheduler: Literal["constant", "constant_with_warmup", "linear", "cosine"] = Field(description="LR schedule")
    lr_warmup_steps: int = Field(ge=0, description="optimizer steps of linear LR warmup")
    max_steps: int = Field(ge=0, description="optimizer steps to train (0 = use epochs)")
    epochs: int = Field(ge=0, description="passes over images x repeats (0 = use max_steps)")
    batch_size: int = Field(ge=1, le=64, description="images per micro-batch (one aspect bucket per batch)")
    gradient_accumulation: int = Field(ge=1, le=64, description="micro-batches per optimizer step")
    mixed_precision: Literal["no", "fp16", "bf16"] = Field(description="autocast precision (fp16/bf16 need CUDA)")
    gradient_checkpointing: bool = Field(description="recompute UNet activations: less VRAM, ~30% slower")
    cache_latents: bool = Field(description="encode each image with the VAE once, keep latents on disk")
    cache_text_embeddings: bool = Field(description="encode each caption once (frozen text encoders only)")
    caption_shuffle: bool = Field(description="shuffle comma-separated tags after the first each step")
    optimizer: Literal["adamw", "adamw8bit"] = Field(description="AdamW, or 8-bit AdamW (bitsandbytes, CUDA only)")
    max_grad_norm: float = Field(ge=0, description="gradient clipping norm (0 = off)")
    min_snr_gamma: float = Field(ge=0, description="min-SNR loss weighting gamma (0 = off, 5 is typical)")
    noise_offset: float = Field(ge=0, le=1, description="offset noise strength (0 = off, ~0.03 helps dark/bright)")
    seed: int = Field(ge=0, description="seed for init, data order, noise and timesteps")
    checkpoint_every: int = Field(ge=1, description="save a checkpoint every N optimizer steps")
    keep_checkpoints: int = Field(ge=1, description="resumable training states kept (LoRA exports are all kept)")
    validation_every: int = Field(ge=1, description="holdout validation loss every N optimizer steps")
    sample_prompts: list[str] = Field(description="prompts sampled at every checkpoint; {trigger} is replaced")
    sample_seeds: list[int] = Field(description="seeds sampled for every prompt")
    sample_steps: int = Field(ge=1, le=200, description="denoising steps for sample (and generated class) images")
    sample_guidance: float = Field(ge=0, le=30, description="classifier-free guidance scale for samples")
    prior_preservation: bool = Field(description="mix in class (regularization) images to keep the class prior")
    class_images_dir: str = Field(description="folder of class images ('' = <workspace>/lora/class_images)")
    class_prompt: str = Field(description="prompt of the class images, e.g. 'photo of a woman'")
    num_class_images: int = Field(ge=0, description="class images wanted; missing ones are generated first")
    prior_loss_weight: float = Field(ge=0, description="weight of the class-image loss")
    resume: str = Field(description="'' = fresh start, 'latest' = newest saved state, or a state folder path")
    output_name: str = Field(pattern=r"^[\w.-]+$", description="file stem of the exported LoRA files")

    @model_validator(mode="after")
    def _no_contradictions(self) -> Self:
        for rule, problem in _training_contradictions(self):
            if rule:
                raise ValueError(problem)
        return self


def _training_contradictions(p: TrainingParams) -> list[tuple[bool, str]]:
    """(violated?, explanation) for every pair of settings that cannot both hold."""
    return [
        (p.max_steps == 0 and p.epochs == 0, "max_steps and epochs are both 0: zero training steps"),
        (p.max_steps > 0 and p.epochs > 0, "set max_steps or epochs, not both (which one should stop training?)"),
        (p.cache_text_embeddings and p.train_text_encoder,
         "cache_text_embeddings with train_text_encoder: cached embeddings would go stale as the encoders learn"),
        (p.cache_text_embeddings and p.caption_shuffle,
         "cache_text_embeddings with caption_shuffle: a cached embedding freezes one tag order"),
        (p.train_text_encoder and p.text_encoder_lr == 0, "train_text_encoder needs text_encoder_lr > 0"),
        (p.lr_scheduler == "constant" and p.lr_warmup_steps > 0,
         "lr_warmup_steps > 0 with lr_scheduler 'constant' (use 'constant_with_warmup')"),
        (0 < p.max_steps <= p.lr_warmup_steps, "lr_warmup_steps must be below max_steps"),
        (bool(p.sample_prompts) and not p.sample_seeds, "sample_prompts given but sample_seeds is empty"),
        (p.prior_preservation and not p.class_prompt.strip(), "prior_preservation needs a class_prompt"),
        (p.prior_preservation and (p.num_class_images == 0 or p.prior_loss_weight == 0),
         "prior_preservation needs num_class_images > 0 and prior_loss_weight > 0"),
    ]  # fmt: skip


# --------------------------------------------------------------------------- 04_checkpoints


class CheckpointsParams(NotebookParams):
    notebook: ClassVar[str] = "04_checkpoints"

    trigger: str = Field(min_length=2, pattern=r"^\S+$", description="rare token that names the character in prompts")
    class_word: str = Field(min_length=1, description="what the character is; `{character}` = trigger + class_word")
    base_model: str = Field(min_length=1, description="SDXL base the LoRAs were trained on: hub id, folder or tiny:sdxl")
    checkpoints_glob: str = Field(min_length=1, description="glob under the workspace of the kohya LoRA files to compare")
    include_base: bool = Field(description="also generate with the base model alone (step 0, a reference row)")
    holdout_prompts: int = Field(ge=0, le=100, description="validation captions used as prompts (the first N)")
    context_prompts: list[str] = Field(description="new-context prompts testing generalisation; {character} is filled in")
    seeds: list[int] = Field(min_length=2, description="seeds per prompt (two or more: diversity compares seeds)")
    lora_scales: list[float] = Field(min_length=1, description="LoRA strengths to try, each in (0, 2]")
    width: int = Field(ge=64, le=2048, multiple_of=8, description="image width in pixels")
    height: int = Field(ge=64, le=2048, multiple_of=8, description="image height in pixels")
    steps: int = Field(ge=1, le=200, description="denoising steps per image")
    guidance_scale: float = Field(ge=0, le=30, description="classifier-free guidance scale")
    negative_prompt: str = Field(description="negative prompt for every image (\"\" = none)")
    face_embedder: str = Field(pattern=r"^(sface|arcface(:\S+)?)$", description="sface (OpenCV, offline) or arcface:<insightface pack name or folder>")
    clip_model: str = Field(min_length=1, description="CLIP for CLIP-T / CLIP-I: hub id, folder or tiny:clip")
    dino_model: str = Field(min_length=1, description="DINOv2 for DINO similarity, memorization, diversity")
    copy_phash_distance: int = Field(ge=0, le=64, description="pHash bits (of 64) at or below which an output copies a training image")
    copy_similarity: float = Field(gt=0, le=1, description="DINO cosine at or above which an output copies a training image")
    identity_tolerance: float = Field(ge=0, le=1, description="identity (cosine) below the best that still counts as good")
    fidelity_drop: float = Field(ge=0, le=1, description="relative CLIP-T drop from the best that signals overfitting")
    diversity_drop: float = Field(ge=0, le=1, description="relative seed-diversity drop from the best that signals overfitting")
    memorization_rise: float = Field(ge=0, le=1, description="copy-rate rise over the lowest checkpoint that signals overfitting")
    validation_loss_csv: str = Field(description="training's validation-loss CSV under the workspace (\"\" = none)")

    @model_validator(mode="after")
    def _grid_values(self) -> Self:
        bad = [s for s in self.lora_scales if not 0 < s <= 2]
        if bad:
            raise ValueError(f"lora_scales {bad} out of range (0, 2]")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds {self.seeds} repeat a value")
        if self.holdout_prompts == 0 and not self.context_prompts:
            raise ValueError("no prompts: holdout_prompts is 0 and context_prompts is empty")
        return self


# --------------------------------------------------------------------------- 05_inpainting


class MaskRegion(BaseModel):
    """One painted shape of an inpainting mask: a rectangle or ellipse inside `box` (x0, y0, x1, y1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shape: Literal["rectangle", "ellipse"] = Field(description="rectangle, or the ellipse inscribed in the box")
    box: tuple[float, float, float, float] = Field(description="left, top, right, bottom")
    units: Literal["relative", "pixels"] = Field(description="relative = fractions 0..1 of width/height; pixels = absolute")

    @model_validator(mode="after")
    def _box_ordered(self) -> Self:
        x0, y0, x1, y1 = self.box
        if not (x0 < x1 and y0 < y1):
            raise ValueError(f"box {self.box} needs left < right and top < bottom")
        if self.units == "relative" and not all(0 <= v <= 1 for v in self.box):
            raise ValueError(f"relative box {self.box} must lie within 0..1 (or use units: pixels)")
        return self


class InpaintingParams(NotebookParams):
    notebook: ClassVar[str] = "05_inpainting"

    image: str = Field(min_length=1, description='picture to fix: a file path, or "dataset" = first image of <workspace>/dataset')
    prompt: str = Field(description="what the masked area should show (include the trigger word)")
    negative_prompt: str = Field(description="what to steer away from")
    mask_regions: list[MaskRegion] = Field(description="shapes painted white (= repaint); may be empty when mask_file is set")
    mask_file: str = Field(description='mask image, white = repaint ("" for none); combined with mask_regions')
    resize_mask: bool = Field(description="resize a mask_file whose size differs from the image (else refused)")
    mask_grow: int = Field(ge=-256, le=256, description="pixels to grow (+) or shrink (-) the mask before feathering")
    mask_feather: int = Field(ge=0, le=256, description="blur radius in pixels of the mask edge used when pasting back")
    model: str = Field(min_length=1, description="SDXL base (reused via from_pipe) or a dedicated SDXL inpainting checkpoint")
    lora: str = Field(min_length=1, description='LoRA .safetensors, "recommended" (04_checkpoints pick) or "none"')
    lora_scale: float = Field(ge=0, le=2, description="LoRA strength for the main result")
    strength: float = Field(gt=0, le=1, description="denoise: 1 repaints from noise, 0.3 keeps the masked area's layout")
    steps: int = Field(ge=1, le=200, description="sampler steps at strength 1 (fewer run at lower strength)")
    guidance_scale: float = Field(ge=0, le=30, description="classifier-free guidance")
    seed: int = Field(ge=0, description="noise seed; same seed + same params = same image")
    only_masked: bool = Field(description="crop around the mask and inpaint that crop at the model's native resolution")
    crop_padding: int = Field(ge=0, le=4096, description="pixels of context kept around the mask in only_masked mode")
    sweep_strengths: list[float] = Field(min_length=1, max_length=8, description="strength values of the sweep grid")
    sweep_lora_scales: list[float] = Field(min_length=1, max_length=8, description="LoRA scales of the sweep grid")
    comfy_url: str = Field(description='ComfyUI base URL ("" skips the ComfyUI route)')
    comfy_checkpoint: str = Field(description="checkpoint file name as ComfyUI lists it")
    comfy_lora: str = Field(description='LoRA file name as ComfyUI lists it ("" = no LoRA)')
    comfy_timeout: float = Field(gt=0, le=3600, description="seconds to wait for a ComfyUI result")

    @model_validator(mode="after")
    def _inpaint_rules(self) -> Self:
        if not self.mask_regions and not self.mask_file:
            raise ValueError("no mask: give mask_regions, a mask_file, or both")
        bad = [v for v in self.sweep_strengths if not 0 < v <= 1] + [v for v in self.sweep_lora_scales if not 0 <= v <= 2]
        if bad:
            raise ValueError(f"sweep values out of range: {bad} (strengths in (0, 1], LoRA scales in [0, 2])")
        weakest = min(self.strength, *self.sweep_strengths)
        if self.steps * weakest < 1:  # diffusers runs int(steps * strength) steps; zero is an error there
            raise ValueError(f"steps {self.steps} x strength {weakest:g} runs no denoising step: raise steps or strength")
        return self


# --------------------------------------------------------------------------- 06_batch_generation


class BatchParams(NotebookParams):
    notebook: ClassVar[str] = "06_batch_generation"

    prompts_file: Path = Field(description="CSV, YAML or JSONL rows: prompt, negative, seeds or count, lora_strength, size")
    batch_name: str = Field(pattern=r"^[\w.-]+$", description="folder under <workspace>/batches/; rerun = resume")
    backends: list[Literal["comfyui", "local"]] = Field(min_length=1, description="comfyui = API servers, local = diffusers")
    servers: list[str] = Field(description="ComfyUI base URLs; jobs go to the least busy")
    workflow: str = Field(min_length=1, description="API-format workflow: template name in pistachio_nb/workflows or a path")
    comfy_checkpoint: str = Field(description="checkpoint file name as ComfyUI lists it")
    comfy_lora: str = Field(description='LoRA file name as ComfyUI lists it ("" keeps the workflow\'s)')
    model: str = Field(min_length=1, description="local backend: SDXL model (hub id, path or tiny:sdxl)")
    lora: str = Field(min_length=1, description='local backend: LoRA .safetensors, "recommended" (04 pick) or "none"')
    negative: str = Field(description="negative prompt for rows that give none")
    count: int = Field(ge=1, le=1000, description="images per row without seeds (seeds base_seed, base_seed+1, ...)")
    base_seed: int = Field(ge=0, description="first seed for rows without seeds")
    lora_strength: float = Field(ge=-5, le=5, description="LoRA strength for rows that give none")
    width: int = Field(ge=16, le=8192, multiple_of=8, description="image width for rows without size")
    height: int = Field(ge=16, le=8192, multiple_of=8, description="image height for rows without size")
    steps: int = Field(ge=1, le=200, description="sampler steps")
    cfg: float = Field(ge=0, le=30, description="classifier-free guidance scale")
    jobs_per_server: int = Field(ge=1, le=16, description="prompts in flight per server (2 = one running, one queued)")
    retries: int = Field(ge=0, le=20, description="retries of a job after connection errors or timeouts")
    backoff_seconds: float = Field(ge=0, le=600, description="first retry delay; doubles each retry")
    job_timeout_seconds: float = Field(gt=0, le=86400, description="give up on (and cancel) a prompt after this long")
    request_timeout_seconds: float = Field(gt=0, le=600, description="timeout of each HTTP request")

    @model_validator(mode="after")
    def _servers_for_comfyui(self) -> Self:
        if len(set(self.backends)) != len(self.backends):
            raise ValueError(f"backends {self.backends} repeat a value")
        if "comfyui" in self.backends:
            if not self.servers:
                raise ValueError("backends has comfyui but servers is empty (e.g. ['http://127.0.0.1:8188'])")
            bad = [u for u in self.servers if not u.startswith(("http://", "https://"))]
            if bad:
                raise ValueError(f"servers must be http(s):// URLs, got {bad}")
            if not self.comfy_checkpoint:
                raise ValueError("backends has comfyui but comfy_checkpoint is empty")
        return self


# --------------------------------------------------------------------------- 07_knowledge_audit


class KnowledgeAuditParams(NotebookParams):
    notebook: ClassVar[str] = "07_knowledge_audit"

    kb_root: Path = Field(description="folder of Markdown files to audit; read only, nothing in it is changed")
    always_loaded: list[str] = Field(description="globs relative to kb_root of files loaded before every task")
    context_budget: int = Field(gt=0, description="estimated tokens you accept spending on always-loaded files")
    placeholder_patterns: list[str] = Field(min_length=1, description="regexes of placeholder lines ([FILL IN], TODO)")
    blank_share: float = Field(gt=0, le=1, description="flag a file/section when this share of lines are placeholders")
    duplicate_threshold: float = Field(gt=0, le=1, description="estimated Jaccard of word 5-grams that means near-copy")
    stale_days: int = Field(ge=1, description="stale: a file changed this many days later has the same heading")
    superseded_terms: dict[str, str] = Field(description="old term -> what replaced it; every mention is listed")
    growth_sections: list[str] = Field(description="heading names whose line count is tracked over git history")

    @field_validator("placeholder_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"{pattern!r} is not a valid regular expression: {err}") from None
        return patterns


# --------------------------------------------------------------------------- registry
def all_params_models() -> dict[str, type[NotebookParams]]:
    """Notebook name -> its params model (every direct or indirect subclass with a notebook name)."""
    found: dict[str, type[NotebookParams]] = {}
    todo = list(NotebookParams.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.notebook:
            found[cls.notebook] = cls
    return found


def params_model_for(notebook: str) -> type[NotebookParams]:
    """The params model of a notebook by name (`01_dataset` or `01_dataset.ipynb`)."""
    name = Path(notebook).stem
    models = all_params_models()
    if name not in models:
        raise ParamsError(f"no params model for notebook {name!r}", fix=f"known notebooks: {sorted(models)}")
    return models[name]
