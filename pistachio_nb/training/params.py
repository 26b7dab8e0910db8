"""03_training params: SDXL LoRA training. Static contradictions are refused here.

Defaults live only in the notebook's `parameters` cell; each description equals that line's comment.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Self

from pydantic import Field, model_validator

from ..params import NotebookParams


class TrainingParams(NotebookParams):
    """SDXL LoRA training. Static contradictions are refused here; device-dependent ones in training.config."""

    notebook: ClassVar[str] = "03_training"

    base_model: str = Field(min_length=1, description="SDXL base: hub id, local folder or tiny:sdxl")
    resolution: int = Field(ge=64, le=2048, multiple_of=8, description="training side in px (bucket area ~ resolution^2); the pod uses 1024")
    network_type: Literal["lora", "locon", "loha", "lokr", "dora"] = Field(description="lora | locon (+ convs) | loha | lokr | dora")
    rank: int = Field(ge=1, le=256, description="LoRA rank (dim): capacity of the update")
    alpha: float = Field(gt=0, description="LoRA alpha; the update is scaled by alpha/rank")
    target_modules: list[str] = Field(min_length=1, description="UNet linear layers that get LoRA adapters")
    train_text_encoder: bool = Field(description="also train LoRA adapters on both text encoders")
    unet_lr: float = Field(gt=0, le=1, description="UNet LoRA learning rate")
    text_encoder_lr: float = Field(ge=0, le=1, description="text-encoder LoRA learning rate")
    lr_scheduler: Literal["constant", "constant_with_warmup", "linear", "cosine"] = Field(description="LR schedule: constant | constant_with_warmup | linear | cosine")
    lr_warmup_steps: int = Field(ge=0, description="optimizer steps of linear LR warmup")
    max_steps: int = Field(ge=0, description="optimizer steps to train; 0 means use epochs")
    epochs: int = Field(ge=0, description="passes over images x repeats; 0 means use max_steps")
    batch_size: int = Field(ge=1, le=64, description="images per micro-batch (one aspect bucket per batch)")
    gradient_accumulation: int = Field(ge=1, le=64, description="micro-batches per optimizer step")
    mixed_precision: Literal["no", "fp16", "bf16"] = Field(description="autocast precision: no | fp16 | bf16 (fp16/bf16 need CUDA)")
    gradient_checkpointing: bool = Field(description="recompute UNet activations: less VRAM, ~30% slower")
    cache_latents: bool = Field(description="encode each image with the VAE once, keep latents on disk")
    cache_text_embeddings: bool = Field(description="encode each caption once (frozen text encoders only)")
    caption_shuffle: bool = Field(description="shuffle comma-separated tags after the first keep_tokens, each step")
    keep_tokens: int = Field(ge=0, le=16, description="leading tags that never move or drop (the trigger first)")
    tag_dropout: float = Field(ge=0, lt=1, description="chance each tag after keep_tokens is left out, each step")
    caption_dropout: float = Field(ge=0, lt=1, description="chance a whole caption is emptied, each step")
    optimizer: Literal["adamw", "adamw8bit", "prodigy", "schedulefree_adamw", "adafactor"] = Field(
        description="adamw | adamw8bit | prodigy (lr ~1) | schedulefree_adamw (no LR schedule) | adafactor")
    prodigy_d_coef: float = Field(gt=0, le=10, description="prodigy: multiplier of its estimated step size (1: as estimated)")
    prodigy_safeguard_warmup: bool = Field(description="prodigy: keep the step-size estimate stable during LR warmup")
    prodigy_any_lr: bool = Field(description="prodigy: accept learning rates far from 1 (it expects ~1)")
    ema_decay: float = Field(ge=0, le=0.99999, description="EMA of the LoRA weights, exported as <name>-ema-step-*; 0 turns it off, 0.999 averages up to ~1000 steps")
    ema_device: Literal["cpu", "device"] = Field(description="where the EMA copy lives: cpu (no VRAM) | device (beside the weights, faster)")
    max_grad_norm: float = Field(ge=0, description="gradient clipping norm; 0 turns it off")
    min_snr_gamma: float = Field(ge=0, description="min-SNR loss weighting gamma; 0 turns it off, 5 is typical")
    debiased_estimation: bool = Field(description="weight the loss by 1/sqrt(SNR) (Yu et al. 2024); not with min_snr_gamma")
    loss_type: Literal["l2", "huber", "smooth_l1"] = Field(description="l2 | huber | smooth_l1 (pseudo-Huber: robust to odd images)")
    huber_schedule: Literal["constant", "exponential", "snr"] = Field(description="huber/smooth_l1 threshold over timesteps: constant | exponential | snr")
    huber_c: float = Field(gt=0, le=1, description="huber/smooth_l1 threshold (the schedule's floor); kohya uses 0.1")
    min_timestep: int = Field(ge=0, le=999, description="lowest training timestep drawn (0: all)")
    max_timestep: int = Field(ge=1, le=1000, description="training timesteps are drawn below this (1000: all)")
    noise_offset: float = Field(ge=0, le=1, description="offset noise strength; 0 turns it off, ~0.03 helps very dark or bright images")
    masked_loss: Literal["none", "alpha", "file", "face"] = Field(description="loss mask per image: none | alpha (transparency) | file (<stem>-masklabel.png beside the dataset image) | face (01_dataset's faces)")
    mask_outside_weight: float = Field(ge=0, le=1, description="loss weight outside the mask (inside: 1); OneTrainer uses 0.1, 0 ignores the rest")
    seed: int = Field(ge=0, le=2**32 - 1, description="seed for init, data order, noise and timesteps")
    checkpoint_every: int = Field(ge=1, description="save a checkpoint every N optimizer steps")
    keep_checkpoints: int = Field(ge=1, description="resumable training states kept (LoRA exports are all kept)")
    validation_every: int = Field(ge=1, description="holdout validation loss every N optimizer steps")
    sample_prompts: list[str] = Field(description="prompts sampled at every checkpoint; {trigger} is replaced")
    sample_seeds: list[Annotated[int, Field(ge=0, le=2**64 - 1)]] = Field(description="seeds sampled for every prompt")
    sample_steps: int = Field(ge=1, le=200, description="denoising steps of sample (and generated class) images")
    sample_guidance: float = Field(ge=0, le=30, description="classifier-free guidance scale of samples")
    prior_preservation: bool = Field(description="mix class (regularization) images into every batch to keep the class prior")
    class_images_dir: str = Field(description="folder of your class images; empty: generate into <workspace>/lora/class_images")
    class_prompt: str = Field(description="prompt of the class images, e.g. 'photo of a woman'")
    num_class_images: int = Field(ge=0, description="class images wanted; missing ones are generated first")
    prior_loss_weight: float = Field(ge=0, description="weight of the class-image loss")
    resume: str = Field(description="empty: fresh start; latest: newest saved state; or a state folder path")
    output_name: str = Field(pattern=r"^[\w.-]+$", description="file stem of the exported LoRA files")

    @model_validator(mode="after")
    def _no_contradictions(self) -> Self:
        for rule, problem in _training_contradictions(self):
            if rule:
                raise ValueError(problem)
        return self


def _trained_lrs(p: TrainingParams) -> list[float]:
    return [p.unet_lr, p.text_encoder_lr] if p.train_text_encoder else [p.unet_lr]


def _training_contradictions(p: TrainingParams) -> list[tuple[bool, str]]:
    """(violated?, explanation) for every pair of settings that cannot both hold."""
    return [
        (p.max_steps == 0 and p.epochs == 0, "max_steps and epochs are both 0: zero training steps"),
        (p.max_steps > 0 and p.epochs > 0, "set max_steps or epochs, not both (which one should stop training?)"),
        (p.cache_text_embeddings and p.train_text_encoder,
         "cache_text_embeddings with train_text_encoder: cached embeddings would go stale as the encoders learn"),
        (p.cache_text_embeddings and p.caption_shuffle,
         "cache_text_embeddings with caption_shuffle: a cached embedding freezes one tag order"),
        (p.cache_text_embeddings and (p.tag_dropout > 0 or p.caption_dropout > 0),
         "cache_text_embeddings with tag_dropout/caption_dropout: a cached embedding freezes one caption"),
        ((p.caption_shuffle or p.tag_dropout > 0) and p.keep_tokens == 0,
         "keep_tokens 0 with caption_shuffle/tag_dropout would move or drop the trigger word (set keep_tokens >= 1)"),
        (p.optimizer == "prodigy" and not p.prodigy_any_lr and not all(0.5 <= lr <= 1.0 for lr in _trained_lrs(p)),
         "optimizer 'prodigy' expects learning rates ~1 (it estimates the step size; kohya and its authors use 1.0): "
         "set unet_lr (and text_encoder_lr) to 1.0, or prodigy_any_lr: true if you mean it"),
        (p.min_timestep >= p.max_timestep, "min_timestep must be below max_timestep"),
        (p.masked_loss != "none" and p.mask_outside_weight == 1,
         "masked_loss with mask_outside_weight 1 weighs inside and outside alike: lower it (e.g. 0.1) or set masked_loss 'none'"),
        (p.debiased_estimation and p.min_snr_gamma > 0,
         "debiased_estimation with min_snr_gamma > 0: both reweight the loss by SNR, pick one"),
        (p.loss_type == "l2" and p.huber_schedule != "snr",
         "huber_schedule set with loss_type 'l2': the schedule shapes huber/smooth_l1 only (leave it 'snr')"),
        (p.optimizer == "schedulefree_adamw" and p.lr_scheduler != "constant",
         "optimizer 'schedulefree_adamw' replaces the LR schedule: set lr_scheduler 'constant' (lr_warmup_steps is its warmup)"),
        (0 < p.ema_decay < 0.9, "ema_decay below 0.9 averages only the last few steps: use 0 (off) or 0.9-0.99999, e.g. 0.999"),
        (p.ema_decay > 0 and p.optimizer == "schedulefree_adamw",
         "ema_decay with optimizer 'schedulefree_adamw': it already averages its weights (those are exported): set ema_decay 0"),
        (p.train_text_encoder and p.text_encoder_lr == 0, "train_text_encoder needs text_encoder_lr > 0"),
        (p.lr_scheduler == "constant" and p.lr_warmup_steps > 0 and p.optimizer != "schedulefree_adamw",
         "lr_warmup_steps > 0 with lr_scheduler 'constant' (use 'constant_with_warmup')"),
        (0 < p.max_steps <= p.lr_warmup_steps, "lr_warmup_steps must be below max_steps"),
        (bool(p.sample_prompts) and not p.sample_seeds, "sample_prompts given but sample_seeds is empty"),
        (p.prior_preservation and not p.class_prompt.strip(), "prior_preservation needs a class_prompt"),
        (p.prior_preservation and (p.num_class_images == 0 or p.prior_loss_weight == 0),
         "prior_preservation needs num_class_images > 0 and prior_loss_weight > 0"),
    ]  # fmt: skip
