"""01_dataset's face check: seconds per image cold (detect + embed every face) and warm (the content-hash cache).

Real photos (Grace Hopper, the cameraman) upscaled to phone size and saved as JPEG, each shifted a little so
every file is distinct content. Run: .venv/bin/python tests/benchmarks/bench_dataset_faces.py [images]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from pistachio_nb.dataset.identity import check_identity, face_model
from pistachio_nb.evaluation.identity_check import real_people


def main(n: int = 60) -> None:
    people = list(real_people().values())
    with tempfile.TemporaryDirectory() as tmp:
        source, cache = Path(tmp) / "source", Path(tmp) / "cache"
        source.mkdir()
        cache.mkdir()
        rows = []
        for i in range(n):
            photo = people[1 if i % 3 == 0 else 0].resize((1536, 2048) if i % 2 == 0 else (2048, 2048))  # 2 of 3: Hopper
            canvas = Image.new("RGB", (photo.width + 64, photo.height + 64), (i * 4 % 256, 128, 128))
            canvas.paste(photo, (i % 64, (3 * i) % 64))
            canvas.save(source / f"{i:03d}.jpg", quality=92)
            rows.append({"path": f"{i:03d}.jpg", "hash": f"h{i}", "kept": True, "status": "ok"})
        for label in ("cold", "warm"):
            t0 = time.perf_counter()
            result = check_identity([dict(r) for r in rows], source, cache, face_model("sface"), [], "sface", 0)
            dt = time.perf_counter() - t0
            print(f"{label}: {n} images ({canvas.width}x{canvas.height} JPEG) in {dt:.2f} s, {1000 * dt / n:.1f} ms/image; "
                  f"{result.counts['with_face']} with a face, {result.counts['other_person']} rejected as another person")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
