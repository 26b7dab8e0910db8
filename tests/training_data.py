"""A tiny dataset in the dataset stage's format (metadata.jsonl + kohya folders), for training tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

CAPTIONS = ["ohwx woman, red dress, outdoors", "ohwx woman, smiling, close up", "ohwx woman, black hair",
            "ohwx woman, full body, standing", "ohwx woman, blue shirt, indoors", "ohwx woman, portrait"]  # fmt: skip


def write_tiny_dataset(root: Path, n_train: int = 4, n_val: int = 1, repeats: int = 2, seed: int = 0,
                       sizes: tuple[tuple[int, int], ...] = ((64, 64),)) -> Path:  # fmt: skip
    """Write coloured-shape images with captions; sizes cycle through `sizes` (the buckets)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_train + n_val):
        split = "train" if i < n_train else "validation"
        w, h = sizes[i % len(sizes)]
        folder = f"train/{repeats}_ohwx woman" if split == "train" else "validation"
        name = f"{folder}/img{i}.png"
        pixels = np.full((h, w, 3), rng.integers(0, 255, 3), dtype=np.uint8)
        pixels[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = rng.integers(0, 255, 3)
        (root / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / name)
        caption = CAPTIONS[i % len(CAPTIONS)]
        (root / name).with_suffix(".txt").write_text(caption)
        rows.append({"file_name": name, "split": split, "width": w, "height": h, "original_width": w * 2,
                     "original_height": h * 2, "crop_left": 0, "crop_top": 0, "source": f"src/{i}.jpg",
                     "hash": f"{seed:04d}{i:060d}", "text": caption})  # fmt: skip
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def training_params(workspace: Path, **overrides):
    """The demo profile's 03_training values, made faster for unit tests, plus `overrides`."""
    import yaml

    from pistachio_nb.training import TrainingParams
    from pistachio_nb.paths import repo_root

    values = yaml.safe_load((repo_root() / "params" / "demo.yaml").read_text())["03_training"]
    values.update(workspace=str(workspace), batch_size=1, max_steps=4, checkpoint_every=2, validation_every=2,
                  sample_prompts=[], sample_seeds=[], prior_preservation=False, lr_warmup_steps=0,
                  lr_scheduler="constant", resume="")  # fmt: skip
    values.update(overrides)
    return TrainingParams.validate_values(values)


def train_in_memory(workspace: Path, **overrides):
    """A tiny dataset under `workspace`, trained from scratch with `training_params(**overrides)`; the run, still in memory."""
    from pistachio_nb.training.data import load_dataset
    from pistachio_nb.training.logs import TrainLog
    from pistachio_nb.training.loop import resume_or_start, run_loop, setup_run

    write_tiny_dataset(workspace / "dataset")
    p = training_params(workspace, **overrides)
    run = setup_run(p, load_dataset(p.ws.dataset, p.resolution), p.ws.lora)
    progress = resume_or_start(run, None)
    log = TrainLog(p.ws.lora, 0)
    run_loop(run, progress, log)
    log.close()
    return run
