"""`train_lora`: validated config -> LoRA checkpoints (kohya + diffusers, + EMA), curves, samples, resumable states.

Runs under accelerate, so `accelerate launch` spreads it over several GPUs with no code change;
only the main process writes files.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from diffusers.optimization import get_scheduler
from tqdm.auto import tqdm

from ..files import append_jsonl, read_jsonl, write_jsonl, write_sidecar
from ..models import pick_device, resolve_model
from ..paths import resolve
from .captions import CaptionPolicy
from .checkpoint import Progress, RngState, load_state, prune_states, remove_stale_temps, save_state, saved_info
from .data import DatasetInfo, Example, epoch_batches, fingerprint, tag_frequency
from .ema import AdapterEma
from .export import DIFFUSERS_LOADS, adapter_configs, base_weights, lora_state_dicts, network_info, save_diffusers, save_kohya
from .features import Featurizer
from .logs import TrainLog
from .loss import LossOptions, training_loss, validation_loss
from .masks import build_masks
from .optim import eval_weights, make_optimizer
from .params import TrainingParams
from .prior import class_batch, class_examples
from .sampling import fill_prompt, sample_images
from .sdxl import add_adapters, load_for_training, trainable_parameters

MANIFEST = "checkpoints.jsonl"
WEIGHT_DTYPE = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class Run:
    """Everything the loop carries between steps."""

    p: TrainingParams
    accelerator: Accelerator
    pipe: object
    noise_scheduler: object
    trained: list  # modules with adapters: unet, then the text encoders when they train
    models: list  # the same, as the accelerator prepared them for the training forward
    optimizer: object
    lr_scheduler: object
    rng: RngState
    featurizer: Featurizer
    loss: LossOptions
    data: DatasetInfo
    classes: list[Example]
    out: Path
    total_steps: int
    started_at: str
    ema: AdapterEma | None  # the adapters' EMA, None when ema_decay is 0


def model_identity(ref: str) -> str:
    """Names the base model in cache keys: a local folder counts as changed when it was rebuilt or replaced."""
    resolved = resolve_model(ref)
    index = Path(resolved) / "model_index.json"
    return f"{resolved}@{index.stat().st_mtime_ns}" if index.exists() else resolved


def steps_per_epoch(data: DatasetInfo, p: TrainingParams) -> int:
    """Optimizer steps in one pass over images x repeats."""
    return math.ceil(len(epoch_batches(data.train, p.batch_size, p.seed, 0)) / p.gradient_accumulation)


def total_steps(data: DatasetInfo, p: TrainingParams) -> int:
    return p.max_steps or p.epochs * steps_per_epoch(data, p)


def _optimizer(p: TrainingParams, trained: list) -> torch.optim.Optimizer:
    """The chosen optimizer over the adapters, one param group per learning rate."""
    groups = [{"params": trainable_parameters(trained[:1]), "lr": p.unet_lr}]
    if p.train_text_encoder:
        groups.append({"params": trainable_parameters(trained[1:]), "lr": p.text_encoder_lr})
    return make_optimizer(p, groups)


def setup_run(p: TrainingParams, data: DatasetInfo, out: Path) -> Run:
    """Load the base model, make class images, add adapters, build optimizer and schedule."""
    # accelerate keeps one state per process; reset its precision part so a second run in the same
    # notebook kernel may use another precision (the distributed part, set by `accelerate launch`, stays)
    AcceleratorState._reset_state(reset_partial_state=False)
    masks = None if p.masked_loss == "none" else build_masks(p.masked_loss, p.mask_outside_weight, data.train, out / "cache")
    accelerator = Accelerator(mixed_precision=p.mixed_precision, cpu=pick_device() == "cpu")
    pipe, noise_scheduler = load_for_training(p.base_model, str(accelerator.device), WEIGHT_DTYPE[p.mixed_precision])
    classes = []
    if p.prior_preservation:  # with the base model, before any adapter exists
        source = resolve(p.class_images_dir) if p.class_images_dir else None
        classes = class_examples(pipe, data.train, out / "class_images", source, p.class_prompt,
                                 p.num_class_images, p.seed, p.sample_steps)  # fmt: skip
    torch.manual_seed(p.seed)  # adapter init
    trained = add_adapters(pipe, p.rank, p.alpha, p.target_modules, p.train_text_encoder, p.network_type)
    if p.gradient_checkpointing:
        pipe.unet.enable_gradient_checkpointing()
        for encoder in trained[1:]:
            encoder.gradient_checkpointing_enable()
    optimizer = _optimizer(p, trained)
    if accelerator.scaler is not None:  # fp16: accelerate's wrapper applies the loss scaler in step()
        optimizer = accelerator.prepare_optimizer(optimizer)  # (otherwise it only adds ~2 ms of checks per step)
    # under `accelerate launch` these are DDP wrappers that average gradients across GPUs; the training
    # forward goes through them, sampling and export use the plain modules in `pipe`
    models = [accelerator.prepare_model(m) for m in trained]
    steps = total_steps(data, p)
    lr_scheduler = get_scheduler(p.lr_scheduler, optimizer, num_warmup_steps=p.lr_warmup_steps, num_training_steps=steps)
    rng = RngState(torch.Generator().manual_seed(p.seed), random.Random(p.seed))
    featurizer = Featurizer(pipe, out / "cache", model_identity(p.base_model), p.cache_latents, p.cache_text_embeddings,
                            CaptionPolicy(p.caption_shuffle, p.keep_tokens, p.tag_dropout, p.caption_dropout),
                            p.train_text_encoder, rng.python,
                            tuple(models[1:]) or None, masks)  # fmt: skip
    started = datetime.now(UTC).isoformat(timespec="seconds")
    ema = AdapterEma.of(trainable_parameters(trained), p.ema_decay, p.ema_device) if p.ema_decay else None
    loss = LossOptions(p.noise_offset, p.min_snr_gamma, p.debiased_estimation, p.loss_type, p.huber_schedule, p.huber_c,
                       p.min_timestep, p.max_timestep)  # fmt: skip
    return Run(p, accelerator, pipe, noise_scheduler, trained, models, optimizer, lr_scheduler, rng, featurizer, loss,
               data, classes, out, steps, started, ema)  # fmt: skip


def _micro_loss(run: Run, examples: list[Example], step: int) -> torch.Tensor:
    p, device = run.p, run.accelerator.device
    with run.accelerator.autocast():
        batch = run.featurizer.batch(examples, device)
        loss = training_loss(run.models[0], run.noise_scheduler, batch, run.rng.noise, run.loss)
        if run.classes:
            prior = run.featurizer.batch(class_batch(run.classes, examples[0].size, len(examples), step), device)
            loss = loss + p.prior_loss_weight * training_loss(run.models[0], run.noise_scheduler, prior, run.rng.noise, run.loss)
    return loss


def _optimizer_step(run: Run, group: list[list[int]], step: int) -> float:
    """Accumulate gradients over the micro-batches of `group`, then one optimizer + LR step."""
    total = 0.0
    for indices in group:
        loss = _micro_loss(run, [run.data.train[i] for i in indices], step) / len(group)
        run.accelerator.backward(loss)
        total += loss.item()
    if run.p.max_grad_norm > 0:
        run.accelerator.clip_grad_norm_(trainable_parameters(run.trained), run.p.max_grad_norm)
    run.optimizer.step()
    if run.ema:
        run.ema.update()
    run.lr_scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    return total


def _validate(run: Run) -> float | None:
    """Mean holdout loss at fixed timesteps and noise (None without validation images)."""
    if not run.data.validation:
        return None
    with run.accelerator.autocast(), eval_weights(run.optimizer):
        batches = [run.featurizer.batch([ex], run.accelerator.device, vary=False) for ex in run.data.validation]
        losses = [validation_loss(run.pipe.unet, run.noise_scheduler, b, seed=run.p.seed + i) for i, b in enumerate(batches)]
    return sum(losses) / len(losses)


def _ss_info(run: Run, progress: Progress) -> dict:
    p = run.p
    return {
        "base_model_version": "sdxl_base_v1-0", **network_info(p.network_type), "network_dim": p.rank,
        "network_alpha": p.alpha, "sd_model_name": p.base_model, "output_name": p.output_name,
        "steps": progress.step, "max_train_steps": run.total_steps, "epoch": progress.epoch,
        "training_started_at": run.started_at, "resolution": f"({p.resolution},{p.resolution})",
        "num_train_images": len(run.data.train), "learning_rate": p.unet_lr, "unet_lr": p.unet_lr,
        "text_encoder_lr": p.text_encoder_lr if p.train_text_encoder else 0, "lr_scheduler": p.lr_scheduler,
        "lr_warmup_steps": p.lr_warmup_steps, "optimizer": p.optimizer, "mixed_precision": p.mixed_precision,
        "seed": p.seed, "noise_offset": p.noise_offset, "min_snr_gamma": p.min_snr_gamma,
        "batch_size_per_device": p.batch_size, "gradient_accumulation_steps": p.gradient_accumulation,
        "loss_type": p.loss_type, "huber_schedule": p.huber_schedule, "huber_c": p.huber_c,
        "debiased_estimation": p.debiased_estimation, "min_timestep": p.min_timestep, "max_timestep": p.max_timestep,
        "masked_loss": p.masked_loss != "none", "mask_source": p.masked_loss, "mask_outside_weight": p.mask_outside_weight,
        "shuffle_caption": p.caption_shuffle, "keep_tokens": p.keep_tokens, "caption_dropout_rate": p.caption_dropout,
        "caption_tag_dropout_rate": p.tag_dropout,
        "trigger": run.data.trigger, "training_comment": f"trigger word: {run.data.trigger}",
        "tag_frequency": tag_frequency(run.data.train),
    }  # fmt: skip


def _checkpoint(run: Run, progress: Progress, val_loss: float | None, train_loss: float) -> dict:
    """Save the resumable state, then the exports; returns the manifest row."""
    p = run.p
    saved = {**p.model_dump(mode="json"), "dataset_fingerprint": fingerprint(run.data.train)}
    info = {"train_loss": train_loss, "val_loss": val_loss, "started_at": run.started_at}
    save_state(run.out / "state", run.pipe, run.optimizer, run.lr_scheduler, run.rng, progress, saved, info, run.ema)
    prune_states(run.out / "state", p.keep_checkpoints)
    with eval_weights(run.optimizer):
        return _export(run, progress, val_loss, train_loss, run.started_at)


def _save_kohya(run: Run, dest: Path, states: dict, info: dict, step: int) -> Path:
    """One kohya file of `states` (the weights the model holds now) with its params sidecar."""
    p = run.p
    path = save_kohya(dest, states, p.rank, p.alpha, WEIGHT_DTYPE[p.mixed_precision], info, base_weights(run.pipe, states))
    write_sidecar(path, p, step=step)
    return path


def _export(run: Run, progress: Progress, val_loss: float | None, train_loss: float, started_at: str) -> dict:
    """Both LoRA formats and the sample images of the current weights, the EMA's kohya file; returns the manifest row.

    Leaves every RNG as it found it, so training after a resume that redoes this step's exports
    continues exactly as after an uninterrupted save.
    """
    p, out, name = run.p, run.out, f"step-{progress.step:08d}"
    rng = run.rng.dump()
    states = lora_state_dicts(run.pipe)
    info = {**_ss_info(run, progress), "training_started_at": started_at}
    kohya = _save_kohya(run, out / f"{p.output_name}-{name}.safetensors", states, info, progress.step)
    ema = None
    if run.ema:
        with run.ema.held():
            ema = _save_kohya(run, out / f"{p.output_name}-ema-{name}.safetensors", lora_state_dicts(run.pipe),
                              {**info, "ema_decay": p.ema_decay}, progress.step)  # fmt: skip
    diffusers_dir = None
    if p.network_type in DIFFUSERS_LOADS:
        diffusers_dir = save_diffusers(out / "diffusers" / name, states, adapter_configs(run.pipe),
                                       WEIGHT_DTYPE[p.mixed_precision])  # fmt: skip
    prompts = [fill_prompt(x, run.data.trigger) for x in p.sample_prompts]
    samples = sample_images(run.pipe, prompts, p.sample_seeds, p.resolution, p.sample_steps, p.sample_guidance,
                            out / "samples" / name)  # fmt: skip
    run.rng.load(rng)
    return {"step": progress.step, "epoch": progress.epoch, "kohya": str(kohya),
            "diffusers": str(diffusers_dir) if diffusers_dir else None, "ema": str(ema) if ema else None,
            "train_loss": train_loss, "val_loss": val_loss, "samples": samples}  # fmt: skip


RUN_OUTPUTS = ("*-step-*.safetensors*", "diffusers", "samples", "state", "tensorboard", "metrics.csv",
               "validation.csv", MANIFEST)  # what one run writes; caches and class images are kept across runs


def archive_previous_run(out: Path) -> Path | None:
    """Move an earlier run's outputs to `archive/<UTC time>/` so a fresh run never mixes with them."""
    found = [f for pattern in RUN_OUTPUTS for f in out.glob(pattern)]
    if not found:
        return None
    dest = out / "archive" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    dest.mkdir(parents=True, exist_ok=True)
    for f in found:
        f.rename(dest / f.name)
    return dest


def resume_or_start(run: Run, state: Path | None) -> Progress:
    """Restore a saved state, or start fresh (archiving an earlier run); the manifest keeps rows up to the step.

    Temp files a killed process left are removed first; when the kill came between the state and the
    manifest row, the resumed step's exports and row are written now, before training goes on.
    """
    main = run.accelerator.is_main_process
    if main:
        remove_stale_temps(run.out, run.p.output_name)
    if state is None and main:
        archive_previous_run(run.out)
    progress = load_state(state, run.pipe, run.optimizer, run.lr_scheduler, run.rng, run.ema) if state else Progress()
    if not main:
        return progress
    rows = [r for r in read_jsonl(run.out / MANIFEST) if r["step"] <= progress.step] if state else []
    write_jsonl(run.out / MANIFEST, rows)
    if state is not None and progress.step > 0 and not any(r["step"] == progress.step for r in rows):
        info = saved_info(state)
        with eval_weights(run.optimizer):
            row = _export(run, progress, info.get("val_loss"), info.get("train_loss"),
                          info.get("started_at", run.started_at))  # fmt: skip
        append_jsonl(run.out / MANIFEST, row)
    return progress


def run_loop(run: Run, progress: Progress, log: TrainLog | None) -> None:
    """Train to `run.total_steps` from `progress`; `log` is None on the non-main processes of a multi-GPU run."""
    p, acc = run.p, run.accelerator
    recent: list[float] = []
    bar = tqdm(total=run.total_steps, initial=progress.step, desc="training", disable=not acc.is_main_process)
    while progress.step < run.total_steps:
        batches = epoch_batches(run.data.train, p.batch_size, p.seed, progress.epoch)[acc.process_index :: acc.num_processes]
        groups = [batches[i : i + p.gradient_accumulation] for i in range(0, len(batches), p.gradient_accumulation)]
        while progress.position < len(groups) and progress.step < run.total_steps:
            t0 = time.perf_counter()
            loss = _optimizer_step(run, groups[progress.position], progress.step)
            progress.position, progress.step = progress.position + 1, progress.step + 1
            recent.append(loss)
            lrs = run.lr_scheduler.get_last_lr()
            if log:
                log.train({"step": progress.step, "epoch": progress.epoch, "loss": loss, "lr_unet": lrs[0],
                           "lr_text": lrs[1] if len(lrs) > 1 else 0.0, "seconds": time.perf_counter() - t0})  # fmt: skip
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)  # redrawn at tqdm's own pace, not every step
            save = progress.step % p.checkpoint_every == 0 or progress.step == run.total_steps
            val = _validate(run) if (progress.step % p.validation_every == 0 or save) else None
            if val is not None and log:
                log.validation(progress.step, val)
            if save and acc.is_main_process:
                row = _checkpoint(run, progress, val, sum(recent) / len(recent))
                append_jsonl(run.out / MANIFEST, row)
                recent.clear()
        if progress.position >= len(groups):
            progress.epoch, progress.position = progress.epoch + 1, 0
    bar.close()
