"""`train_lora(params)`: the one public verb of 03_training, plus the read-only views the notebook shows."""

from __future__ import annotations

import shutil
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..files import atomic_path, read_jsonl, write_sidecar
from ..models import pick_device, resolve_model
from .checkpoint import find_state, saved_params
from .config import check_device, check_resume, upscale_warning
from .data import fingerprint, load_dataset
from .logs import TrainLog
from .loop import MANIFEST, resume_or_start, run_loop, setup_run, steps_per_epoch, total_steps
from .params import TrainingParams
from .sdxl import TEXT_ENCODER_TARGETS
from .vram import VramPlan, gpu_memory_gb, meta_counts, plan_vram


@dataclass
class TrainResult:
    """Where everything went, and how the run went."""

    lora_dir: Path
    final_lora: Path
    steps_done: int
    total_steps: int
    resumed_from: Path | None
    seconds: float
    vram: VramPlan
    checkpoints: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what was warned before training (upscaling, VRAM)
    final_ema: Path | None = None  # `<name>-ema.safetensors`, the last EMA export, when ema_decay > 0

    def summary(self) -> pd.DataFrame:
        """One row per checkpoint: step, losses and the exported files (the EMA's when there is one)."""
        cols = ["step", "epoch", "train_loss", "val_loss", "kohya", "diffusers"]
        cols += ["ema"] if any(r.get("ema") for r in self.checkpoints) else []
        return pd.DataFrame([{k: r.get(k) for k in cols} for r in self.checkpoints], columns=cols)


def dataset_summary(p: TrainingParams) -> pd.DataFrame:
    """What training will see: images per split and size, trigger, captions, and the step count."""
    data = load_dataset(p.ws.dataset, p.resolution)
    sizes = lambda exs: ", ".join(f"{w}x{h}: {n}" for (w, h), n in sorted(Counter(e.size for e in exs).items()))  # noqa: E731
    rows = {
        "train images (x repeats)": f"{len(data.train)} (x {'/'.join(map(str, sorted({e.repeats for e in data.train})))})",
        "validation images (held out)": len(data.validation),
        "train sizes": sizes(data.train),
        "trigger": data.trigger,
        "images without a caption (folder prompt used)": data.uncaptioned,
        "dataset bucket base / training resolution": f"{data.base_resolution} / {p.resolution}",
        "optimizer steps per epoch": steps_per_epoch(data, p),
        "optimizer steps in total": total_steps(data, p),
    }
    if upscale := upscale_warning(p, data.base_resolution):
        rows["WARNING: upscaled"] = upscale
    return pd.DataFrame({"value": [str(v) for v in rows.values()]}, index=list(rows))


def vram_plan(p: TrainingParams) -> VramPlan:
    """The VRAM estimate for this config, from the model configs only (no weights loaded)."""
    counts = meta_counts(resolve_model(p.base_model), p.rank, p.target_modules, TEXT_ENCODER_TARGETS, p.network_type)
    return plan_vram(
        counts, resolution=p.resolution, batch_size=p.batch_size, mixed_precision=p.mixed_precision,
        gradient_checkpointing=p.gradient_checkpointing, cache_latents=p.cache_latents,
        cache_text_embeddings=p.cache_text_embeddings, train_text_encoder=p.train_text_encoder,
        optimizer=p.optimizer, gpu_gb=gpu_memory_gb(), ema_on_gpu=p.ema_decay > 0 and p.ema_device == "device",
    )  # fmt: skip


def train_lora(p: TrainingParams) -> TrainResult:
    """Validate, plan, (resume and) train, checkpoint and export; returns where everything is."""
    t0 = time.perf_counter()
    check_device(p, pick_device())
    out = p.ws.lora
    data = load_dataset(p.ws.dataset, p.resolution)
    notes = [m for m in [upscale_warning(p, data.base_resolution)] if m]
    state = find_state(out / "state", p.resume)
    if state is not None:
        check_resume(p, saved_params(state), str(state), fingerprint(data.train))
    vram = vram_plan(p)
    if vram.fits is False:
        notes.append(vram.message)
    for note in notes:
        warnings.warn(note, stacklevel=2)
    run = setup_run(p, data, out)
    progress = resume_or_start(run, state)
    run.featurizer.warm(data.train + data.validation + run.classes, p.batch_size)
    main = run.accelerator.is_main_process
    log = TrainLog(out, progress.step) if main else None
    try:
        run_loop(run, progress, log)
    finally:
        if log:
            log.close()
    run.accelerator.wait_for_everyone()
    rows = read_jsonl(out / MANIFEST)
    final = out / f"{p.output_name}.safetensors"
    final_ema = out / f"{p.output_name}-ema.safetensors" if rows[-1].get("ema") else None
    if main:
        for source, dest in ((rows[-1]["kohya"], final), (rows[-1].get("ema"), final_ema)):
            if source:
                with atomic_path(dest) as tmp:
                    shutil.copyfile(source, tmp)
                write_sidecar(dest, p, step=rows[-1]["step"])
    return TrainResult(out, final, progress.step, run.total_steps, state, time.perf_counter() - t0, vram, rows, notes,
                       final_ema)  # fmt: skip
