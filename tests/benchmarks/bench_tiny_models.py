"""Seconds to build and to load each tiny model kind (fresh temp folder), plus one SDXL generation."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from pistachio_nb import models  # noqa: E402

LOADERS = {"sdxl": models.load_sdxl_pipeline, "captioner": models.load_captioner,
           "clip": models.load_clip, "dinov2": models.load_dinov2}  # fmt: skip


def main() -> None:
    import diffusers  # noqa: F401 - import cost is not the models' cost
    import transformers  # noqa: F401

    with tempfile.TemporaryDirectory() as root:
        for kind, loader in LOADERS.items():
            t0 = time.perf_counter()
            folder = models.ensure_tiny(kind, root)
            t1 = time.perf_counter()
            loaded = loader(str(folder), device="cpu")
            t2 = time.perf_counter()
            print(f"{kind:10s} build {t1 - t0:6.2f} s   load {t2 - t1:6.2f} s   size {_mb(folder):.2f} MB")
            if kind == "sdxl":
                t0 = time.perf_counter()
                loaded("a photo of ohwx woman", height=64, width=64, num_inference_steps=2,
                       generator=torch.Generator().manual_seed(0))  # fmt: skip
                print(f"sdxl generate 64x64, 2 steps: {time.perf_counter() - t0:.3f} s")

def _mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


if __name__ == "__main__":
    main()
