"""01_dataset ingest+dedup speed and memory against imagehash used plainly, on generated ~1 MP JPEGs.

Usage: .venv/bin/python tests/benchmarks/bench_dataset.py [--n 2000] [--small 500] [--texture 1.0]
The ratio depends on how much of a JPEG's decode cost is entropy decoding (which every full-stream decode
pays): more texture (bigger files) means a smaller gain from reduced-scale decoding.
Each measurement runs in a fresh subprocess; peak memory is sampled over the whole process tree.
The generated folders are cached under /tmp/pistachio-bench-dataset/ between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import psutil

CACHE = Path("/tmp/pistachio-bench-dataset")
SIZE = (1224, 816)  # ~1 MP, a 3:2 photo


_GRAIN = None


def _grain(texture: float):
    """One texture field per process (fine grain plus mid-frequency variation, like foliage or fabric),
    cropped at random offsets so generation stays fast; gives ~300 KB per 1 MP JPEG at quality 90."""
    global _GRAIN
    if _GRAIN is None:
        import numpy as np
        from PIL import Image

        rng = np.random.default_rng(0)
        w, h = SIZE[0] + 64, SIZE[1] + 64
        coarse = Image.fromarray(rng.normal(0, 25 * texture, (h // 4 + 1, w // 4 + 1)).astype(np.float32), "F")
        mid = np.asarray(coarse.resize(((w // 4 + 1) * 4, (h // 4 + 1) * 4), Image.Resampling.BICUBIC))[:h, :w]
        _GRAIN = (rng.normal(0, 3 * texture, (h, w)).astype(np.float32) + mid)[:, :, None]
    return _GRAIN


def _make_one(job: tuple[Path, int, float]) -> None:
    """One ~1 MP photo-like JPEG: a drawn scene plus texture; every tenth is an edited copy of the one before."""
    import numpy as np
    from PIL import Image, ImageEnhance

    from pistachio_testkit.demo_data import draw_scene

    dest, i, texture = job
    base = i - 1 if i % 10 == 9 else i
    rng = random.Random(base)
    scene = draw_scene(rng, (SIZE[0] // 2, SIZE[1] // 2)).resize(SIZE, Image.Resampling.BICUBIC)
    dx, dy = rng.randrange(64), rng.randrange(64)
    pixels = np.asarray(scene, dtype=np.float32) + _grain(texture)[dy:dy + SIZE[1], dx:dx + SIZE[0]]
    im = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if base != i:
        im = ImageEnhance.Brightness(im.resize((1100, 733), Image.Resampling.BILINEAR)).enhance(1.05)
    im.save(dest / f"img_{i:05d}.jpg", quality=90 if base == i else 80)


def make_folder(n: int, texture: float) -> Path:
    """Generate (once, cached) a folder of `n` JPEGs using every core."""
    name = f"jpegs_{n}" if texture == 1.0 else f"jpegs_{n}_texture_{texture:g}"
    dest, done = CACHE / name, CACHE / f"{name}.complete"
    if done.exists():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with ProcessPoolExecutor() as pool:
        list(pool.map(_make_one, [(dest, i, texture) for i in range(n)], chunksize=32))
    done.write_text("")
    print(f"generated {n} JPEGs in {time.perf_counter() - t0:.1f} s into {dest}", file=sys.stderr)
    return dest


def subset_folder(big: Path, n: int) -> Path:
    """The first `n` files of `big`, hard-linked into their own folder (no second generation)."""
    dest = CACHE / f"{big.name}_first_{n}"
    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted(big.glob("*.jpg"))[:n]:
        if not (dest / f.name).exists():
            (dest / f.name).hardlink_to(f)
    return dest


class PeakMemory:
    """Samples this process and all its descendants: peak summed RSS (every 50 ms) and PSS (every 250 ms),
    the peak RSS of the main process and of the biggest other process, and the CPU seconds the whole tree
    spent (the sampler's own CPU excluded)."""

    def __init__(self) -> None:
        self.rss = self.pss = self.main_rss = self.other_rss = 0
        self._cpu: dict[int, float] = {}
        self._sampler_cpu = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def cpu_seconds(self) -> float:
        return sum(self._cpu.values())

    def _run(self) -> None:
        me, tick = psutil.Process(), 0
        while not self._stop.is_set():
            rss = pss = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    mem, cpu = proc.memory_info(), proc.cpu_times()
                    pss += proc.memory_full_info().pss if tick % 5 == 0 else 0
                except psutil.Error:
                    continue
                rss += mem.rss
                self._cpu[proc.pid] = cpu.user + cpu.system
                if proc.pid == me.pid:
                    self.main_rss = max(self.main_rss, mem.rss)
                else:
                    self.other_rss = max(self.other_rss, mem.rss)
            self.rss, self.pss, tick = max(self.rss, rss), max(self.pss, pss), tick + 1
            self._sampler_cpu = time.thread_time()
            self._stop.wait(0.05)

    def __enter__(self) -> PeakMemory:
        self._start_cpu = sum(psutil.Process().cpu_times()[:2])
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        main = sum(psutil.Process().cpu_times()[:2]) - self._start_cpu - self._sampler_cpu
        self._cpu[psutil.Process().pid] = main

    def report(self, files: int, seconds: float, **extra) -> dict:
        mb = 2**20
        return {"files": files, "seconds": seconds, "cpu_seconds": self.cpu_seconds, "rss_mb": self.rss / mb,
                "pss_mb": self.pss / mb, "main_mb": self.main_rss / mb, "other_mb": self.other_rss / mb, **extra}


def run_plain(folder: Path) -> dict:
    """The baseline: imagehash.phash on a full decode, one process, files in order."""
    import imagehash
    from PIL import Image

    files = sorted(folder.glob("*.jpg"))
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        hashes = []
        for f in files:
            with Image.open(f) as im:
                hashes.append(imagehash.phash(im))
        seconds = time.perf_counter() - t0
    return mem.report(len(files), seconds)


def run_ours(folder: Path) -> dict:
    """01_dataset's ingest + dedup: list, probe (validate, full-stream reduced decode, hashes, blur), cluster."""
    from pistachio_nb.dataset.decode import parse_colour
    from pistachio_nb.dataset.ingest import ProbeConfig, list_sources, probe_all
    from pistachio_nb.dataset.dedup import mark_duplicates

    with PeakMemory() as mem:
        t0 = time.perf_counter()
        cfg = ProbeConfig(str(folder), 512, 60_000_000, "phash", parse_colour("white"))
        rels = [p.relative_to(folder).as_posix() for p in list_sources(folder)]
        rows, _ = probe_all(cfg, rels, {}, workers=0)
        mark_duplicates(rows, 10)
        seconds = time.perf_counter() - t0
    return mem.report(len(rels), seconds, duplicates=sum(r["status"] == "duplicate" for r in rows))


def measure(mode: str, folder: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(folder)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="JPEGs in the main folder")
    ap.add_argument("--small", type=int, default=500, help="a smaller folder, to show memory does not grow with size")
    ap.add_argument("--texture", type=float, default=1.0, help="texture amplitude: 1 gives ~275 KB per JPEG, 0.4 ~190 KB")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "FOLDER"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, folder = args.child
        print(json.dumps((run_plain if mode == "plain" else run_ours)(Path(folder))))
        return
    big = make_folder(args.n, args.texture)
    small = subset_folder(big, args.small)
    kb = sum(f.stat().st_size for f in big.glob("*.jpg")) / args.n / 1024
    rows = {
        f"plain imagehash, {args.n}": measure("plain", big),
        f"01_dataset, {args.small}": measure("ours", small),
        f"01_dataset, {args.n}": measure("ours", big),
    }
    print(f"{args.n} JPEGs of {SIZE[0]}x{SIZE[1]}, {kb:.0f} KB on average; {psutil.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'run':24s} {'files':>6s} {'seconds':>8s} {'images/s':>9s} {'img/CPU-s':>10s} {'tree RSS':>9s} {'tree PSS':>9s} {'main RSS':>9s} {'worker RSS':>11s}")
    for name, r in rows.items():
        print(f"{name:24s} {r['files']:6d} {r['seconds']:8.2f} {r['files'] / r['seconds']:9.1f} {r['files'] / r['cpu_seconds']:10.1f} "
              f"{r['rss_mb']:8.0f}M {r['pss_mb']:8.0f}M {r['main_mb']:8.0f}M {r['other_mb']:10.0f}M")
    plain, ours = rows[f"plain imagehash, {args.n}"], rows[f"01_dataset, {args.n}"]
    speed = (ours["files"] / ours["seconds"]) / (plain["files"] / plain["seconds"])
    work = (ours["files"] / ours["cpu_seconds"]) / (plain["files"] / plain["cpu_seconds"])
    print(f"speed-up vs plain imagehash: {speed:.1f}x wall clock (target >= 5x), {work:.1f}x per CPU-second")
    print(f"duplicates found: {ours['duplicates']} ({args.n // 10} planted copies; the rest are look-alike generated scenes)")
    print(f"peak memory, whole process tree: {ours['pss_mb']:.0f} MB PSS / {ours['rss_mb']:.0f} MB summed RSS "
          f"(target < 200 MB); with {args.small} files: {rows[f'01_dataset, {args.small}']['pss_mb']:.0f} MB PSS")


if __name__ == "__main__":
    main()
