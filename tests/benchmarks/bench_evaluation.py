"""Figures for 04_checkpoints on this CPU: SFace time per image and same/different-person cosine, grid cost.

Run: OMP_NUM_THREADS=1 .venv/bin/python tests/benchmarks/bench_evaluation.py
"""

import time

import numpy as np
import pywt
from matplotlib import cbook
from PIL import Image, ImageOps

from pistachio_nb.evaluation.faces import SFaceEmbedder, embed_faces, identity_table, reference_identity


def main() -> None:
    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
        hopper = im.convert("RGB")
    camera = Image.fromarray(pywt.data.camera()).convert("RGB")
    embedder = SFaceEmbedder()
    for size in (512, 1024):
        image = hopper.resize((size, size))
        embedder.embed(image)  # warm-up
        t0 = time.perf_counter()
        for _ in range(10):
            embedder.embed(image)
        print(f"SFace detect+embed at {size}x{size}: {(time.perf_counter() - t0) / 10 * 1000:.0f} ms/image")
    reference = reference_identity(embed_faces(embedder, [hopper]))
    variants = {"resized+flipped copy": ImageOps.mirror(hopper.resize((300, 352))), "cropped copy": hopper.crop((60, 40, 460, 520)),
                "other person (cameraman)": camera}
    table = identity_table(embed_faces(embedder, list(variants.values())), reference)
    for name, score in zip(variants, table["identity"]):
        print(f"cosine to Grace Hopper, {name}: {score:.3f}")
    print(f"noise image face found: {embedder.embed(Image.fromarray(np.zeros((64, 64, 3), np.uint8))) is not None}")


if __name__ == "__main__":
    main()
