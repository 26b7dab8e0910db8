"""01_dataset against its peers, each run as a whole process (interpreter start and imports included),
the jobs of one round interleaved, the median of the rounds reported, with the load average.

Usage: .venv/bin/python tests/benchmarks/bench_dataset.py [--n 2000] [--small 500] [--large 6000] [--rounds 3]
           [--write-rounds 3] [--code DIR] [--no-imagededup] [--encoders 40]

Rows (issue 17's table): ingest+dedup against plain imagehash (full decode, one process) and against
imagededup's PHash (its default workers) in images/s; peak summed RSS of the whole process tree (sampled every
20 ms, workers included) at --small, --n and --large files; processes left behind after the run; known copies
found and precision against the generator's truth; the full 01_dataset at base 1024 (seconds, disk size), with
the face check (sface, crop: face, as on the pod) and without it (the stage the issue's target was set for);
with --encoders N, the speed, size and fidelity of each way of writing N bucket-sized images.
--code DIR measures the pistachio_nb of another checkout (e.g. `git archive` of an older commit) the same way.
imagededup goes into its own venv under the cache folder (see `peer_python`); generated JPEGs are cached
under /tmp/pistachio-bench-dataset/ between runs.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]

CACHE = Path("/tmp/pistachio-bench-dataset")
SIZE = (1224, 816)  # ~1 MP, a 3:2 photo
COPY_EVERY = 10  # every tenth file is an edited copy of the file before it
COPY_KINDS = ("resized", "re-encoded", "brightened", "resized+brightened")
_GRAIN = None


def _grain():
    """One texture field per process (fine grain plus mid-frequency variation, like foliage or fabric),
    cropped at random offsets so generation stays fast; gives ~275 KB per 1 MP JPEG at quality 90."""
    global _GRAIN
    if _GRAIN is None:
        import numpy as np
        from PIL import Image

        rng = np.random.default_rng(0)
        w, h = SIZE[0] + 64, SIZE[1] + 64
        coarse = Image.fromarray(rng.normal(0, 25, (h // 4 + 1, w // 4 + 1)).astype(np.float32), "F")
        mid = np.asarray(coarse.resize(((w // 4 + 1) * 4, (h // 4 + 1) * 4), Image.Resampling.BICUBIC))[:h, :w]
        _GRAIN = (rng.normal(0, 3, (h, w)).astype(np.float32) + mid)[:, :, None]
    return _GRAIN


def original_of(i: int) -> int:
    """The generator's truth: the index of the original that file `i` is a copy of (itself when it is one)."""
    return i - 1 if i % COPY_EVERY == COPY_EVERY - 1 else i


def _make_one(job: tuple[Path, int]) -> None:
    """One ~1 MP photo-like JPEG (a drawn scene plus texture), or an edited copy of the one before it:
    resized (55-90%), re-encoded at quality 70, brightened 5-10%, or resized and brightened, in turn."""
    import numpy as np
    from PIL import Image, ImageEnhance

    from pistachio_testkit.demo_data import draw_scene

    dest, i = job
    base = original_of(i)
    rng = random.Random(base)
    scene = draw_scene(rng, (SIZE[0] // 2, SIZE[1] // 2)).resize(SIZE, Image.Resampling.BICUBIC)
    dx, dy = rng.randrange(64), rng.randrange(64)
    pixels = np.asarray(scene, dtype=np.float32) + _grain()[dy:dy + SIZE[1], dx:dx + SIZE[0]]
    im = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    quality = 92
    if base != i:
        edit, scale, gain = COPY_KINDS[(i // COPY_EVERY) % len(COPY_KINDS)], rng.uniform(0.55, 0.9), rng.uniform(1.05, 1.1)
        if "resized" in edit:
            im = im.resize((round(SIZE[0] * scale), round(SIZE[1] * scale)), Image.Resampling.BILINEAR)
        if "brightened" in edit:
            im = ImageEnhance.Brightness(im).enhance(gain)
        quality = 70 if edit == "re-encoded" else 85
    im.save(dest / f"img_{i:05d}.jpg", quality=quality)


def make_folder(n: int) -> Path:
    """Generate (once, cached) a folder of `n` JPEGs using every core."""
    dest, done = CACHE / f"jpegs_v2_{n}", CACHE / f"jpegs_v2_{n}.complete"
    if done.exists():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with ProcessPoolExecutor() as pool:
        list(pool.map(_make_one, [(dest, i) for i in range(n)], chunksize=32))
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


PEER_PACKAGES = ["imagededup==0.3.3.post2", "scikit-learn", "joblib", "threadpoolctl", "cloudpickle", "narwhals",
                 "scikit-image", "imageio", "tifffile", "lazy_loader"]
TORCHVISION_STUB = '''"""Stand-in for torchvision: imagededup's CNN module touches these names at import; its PHash never does."""
import sys, types
class _Any:
    def __init__(self, *a, **k): pass
    def __call__(self, *a, **k): return self
    def __getattr__(self, name): return _Any()
def _module(name):
    m = types.ModuleType(name); m.__getattr__ = lambda attr: _Any(); sys.modules[name] = m; return m
models, transforms = _module(__name__ + ".models"), _module(__name__ + ".transforms")
models.vision_transformer = _module(__name__ + ".models.vision_transformer")
transforms.transforms = transforms
'''


def peer_python() -> tuple[str | None, str]:
    """A venv holding imagededup and scikit-image, beside (not inside) the project's: it sees the project venv's
    packages through a .pth file, so torch, numpy and Pillow are the pinned ones. No torchvision wheel matches
    the pinned torch, so a stub stands in for the names imagededup's CNN module uses at import (PHash never
    calls them; torch itself is still imported, as imagededup does). Returns (python or None, a note)."""
    venv = CACHE / "peer-venv"
    python = venv / "bin" / "python"
    check = [str(python), "-c", "from imagededup.methods import PHash; import skimage.data"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return str(python), "imagededup 0.3.3.post2 in its own venv (torchvision stubbed: no wheel for the pinned torch)"
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
        site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True, timeout=60).stdout.strip()
        own = subprocess.run([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True, timeout=60).stdout.strip()
        Path(site, "project-venv.pth").write_text(own + "\n")
        subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", *PEER_PACKAGES],
                       check=True, capture_output=True, timeout=1800)
        Path(site, "torchvision").mkdir(exist_ok=True)
        Path(site, "torchvision", "__init__.py").write_text(TORCHVISION_STUB)
        subprocess.run(check, check=True, capture_output=True, timeout=600)
    except (subprocess.SubprocessError, OSError) as err:
        return None, f"imagededup could not be installed ({type(err).__name__}: {err}); compared to plain imagehash only"
    return str(python), "imagededup 0.3.3.post2 installed into its own venv (torchvision stubbed: no wheel for the pinned torch)"


PLAIN = """
import json, sys
from pathlib import Path
import imagehash
from PIL import Image
hashes = {}
for f in sorted(Path(sys.argv[1]).glob("*.jpg")):
    with Image.open(f) as im:
        hashes[f.name] = str(imagehash.phash(im))
Path(sys.argv[2]).write_text(json.dumps(hashes))
"""
IMAGEDEDUP = """
import json, sys
from pathlib import Path
from imagededup.methods import PHash
Path(sys.argv[2]).write_text(json.dumps(PHash(verbose=False).find_duplicates(image_dir=sys.argv[1], max_distance_threshold=10)))
"""
OURS = """
import json, sys
from pathlib import Path
from pistachio_nb.dataset.decode import parse_colour
from pistachio_nb.dataset.dedup import mark_duplicates
from pistachio_nb.dataset.ingest import ProbeConfig, list_sources, probe_all
folder = Path(sys.argv[1])
cfg = ProbeConfig(str(folder), 256, 60_000_000, "phash", parse_colour("white"))  # min_side 256: copies at 55% stay in
rows, _ = probe_all(cfg, [p.relative_to(folder).as_posix() for p in list_sources(folder)], {}, workers=0)
mark_duplicates(rows, 10)
keys = ("path", "status", "duplicate_of", "cluster", "phash")
Path(sys.argv[2]).write_text(json.dumps([{k: r.get(k) for k in keys} for r in rows]))
"""
FULL = """
import json, sys
from pathlib import Path
from pistachio_nb.dataset import DatasetParams, prepare_dataset
values = dict(json.loads(sys.argv[3]), source_dir=sys.argv[1], workspace=sys.argv[2])
p = DatasetParams.validate_values({k: v for k, v in values.items() if k in DatasetParams.model_fields})
counts = prepare_dataset(p).counts
Path(sys.argv[2], "counts.json").write_text(json.dumps(counts))
"""
POD_VALUES = dict(trigger="pstchio", class_word="woman", repeats=10, dedup_algorithm="phash", dedup_threshold=10, min_side=256,
                  max_pixels=60_000_000, alpha_background="white", blur_threshold=50.0, validation_ratio=0.1, split_seed=0,
                  base_resolution=1024, workers=0, face_embedder="sface", face_anchors=[], crop="face")


def run_tree(cmd: list[str], env: dict) -> dict:
    """Run `cmd` as a whole process: wall seconds to its exit, CPU seconds of its tree, peak summed RSS of its
    process tree, and how many of its descendants were still running after it exited (and for how long)."""
    before = sum(os.times()[2:4])
    t0 = time.perf_counter()
    proc = psutil.Popen(cmd, env=env, cwd=CACHE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # not the
    # repo as cwd: `python -c` puts the cwd first on sys.path, above PYTHONPATH, which names the code measured
    seen: dict[int, psutil.Process] = {}
    peak = 0
    while proc.poll() is None:
        total = 0
        try:
            tree = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            tree = [proc]
        for child in tree:
            try:
                total += child.memory_info().rss
                seen.setdefault(child.pid, child)
            except psutil.Error:
                continue
        peak = max(peak, total)
        time.sleep(0.02)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"{cmd[:3]} failed: {proc.stderr.read()[-3000:]}")
    alive = [c for pid, c in seen.items() if pid != proc.pid and _running(c)]
    while any(_running(c) for c in alive) and time.perf_counter() - t0 < seconds + 10:
        time.sleep(0.02)
    return {"seconds": seconds, "cpu_seconds": sum(os.times()[2:4]) - before, "rss_mb": peak / 2**20,
            "left_behind": len(alive), "lingered_s": (time.perf_counter() - t0 - seconds) if alive else 0.0}


def _running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _index(name: str) -> int:
    return int(Path(name).stem.split("_")[1])


def planted(folder: Path) -> set[tuple[str, str]]:
    """The generator's truth: (copy, original) file names."""
    names = {f.name for f in folder.glob("*.jpg")}
    return {(n, f"img_{original_of(_index(n)):05d}.jpg") for n in names if original_of(_index(n)) != _index(n)}


def score_ours(rows: list[dict], truth: set[tuple[str, str]]) -> dict:
    """Copies found (copy and original in one cluster, one kept) and precision (marked duplicates that are copies)."""
    by = {r["path"]: r for r in rows}
    found = sum(by[c]["cluster"] is not None and by[c]["cluster"] == by[o]["cluster"] for c, o in truth)
    marked = [r for r in rows if r["status"] == "duplicate"]
    right = sum(original_of(_index(r["path"])) == original_of(_index(r["duplicate_of"])) for r in marked)
    return {"found": found, "marked": len(marked), "precision": right / max(1, len(marked))}


def score_pairs(pairs: set[frozenset], truth: set[tuple[str, str]]) -> dict:
    """Copies found among reported pairs, and the share of reported pairs that are planted."""
    planted_pairs = {frozenset(t) for t in truth}
    return {"found": len(planted_pairs & pairs), "marked": len(pairs), "precision": len(planted_pairs & pairs) / max(1, len(pairs))}


def plain_pairs(hashes: dict[str, str], radius: int = 10) -> set[frozenset]:
    import numpy as np

    names = sorted(hashes)
    h = np.array([int(hashes[n], 16) for n in names], dtype=np.uint64)
    i, j = np.nonzero(np.triu(np.bitwise_count(h[:, None] ^ h[None, :]) <= radius, 1))
    return {frozenset((names[a], names[b])) for a, b in zip(i, j)}


def job(kind: str, folder: Path, code: Path, peer: str | None) -> dict:
    """One whole-process measurement; its figures plus the dedup score against the generator's truth."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        out = Path(tmp) / "out.json"
        if kind == "plain":
            r = run_tree([sys.executable, "-c", PLAIN, str(folder), str(out)], env)
            r.update(score_pairs(plain_pairs(json.loads(out.read_text())), planted(folder)))
        elif kind == "imagededup":
            r = run_tree([peer, "-c", IMAGEDEDUP, str(folder), str(out)], env)
            dups = json.loads(out.read_text())
            r.update(score_pairs({frozenset((a, b)) for a, bs in dups.items() for b in bs}, planted(folder)))
        elif kind == "ours":
            r = run_tree([sys.executable, "-c", OURS, str(folder), str(out)], env)
            r.update(score_ours(json.loads(out.read_text()), planted(folder)))
        else:
            values = POD_VALUES if kind == "full" else {**POD_VALUES, "face_embedder": "none", "crop": "centre"}
            r = run_tree([sys.executable, "-c", FULL, str(folder), tmp, json.dumps(values)], env)
            dataset = Path(tmp) / "dataset"
            r["disk_gb"] = sum(f.stat().st_size for f in dataset.rglob("*") if f.is_file()) / 1e9
            r["written"] = json.loads((Path(tmp) / "counts.json").read_text())["written"]
    r["files"] = len(list(folder.glob("*.jpg")))
    r["load"] = os.getloadavg()[0]
    return r


DRIFT = """
import json, sys
from pathlib import Path
from pistachio_nb.dataset.decode import parse_colour
from pistachio_nb.dataset.ingest import ProbeConfig, probe_all
folder = Path(sys.argv[1])
cfg = ProbeConfig(str(folder), 64, 60_000_000, "phash", parse_colour("white"))
rows, _ = probe_all(cfg, sorted(f.name for f in folder.iterdir()), {}, workers=1)
print(json.dumps({r["path"]: r["phash"] for r in rows}))
"""
SKIMAGE_PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry", "motorcycle_left", "hubble_deep_field"]


def real_photo_drift(code: Path, peer: str | None) -> str:
    """Bits between 01_dataset's pHash and plain imagehash's of the same file, on the real photos matplotlib
    (and scikit-image, through the peer venv) ship, each also resized, re-encoded, brightened and as PNG."""
    import imagehash
    import matplotlib.cbook
    import numpy as np
    from PIL import Image, ImageEnhance

    sources = {n: Image.open(matplotlib.cbook.get_sample_data(n)).convert("RGB") for n in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")}
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        if peer:
            code_sk = f"import skimage.data as d, imageio.v3 as io\nfor n in {SKIMAGE_PHOTOS!r}:\n  try: io.imwrite('{tmp}/sk_' + n + '.png', getattr(d, n)())\n  except Exception: pass"
            subprocess.run([peer, "-c", code_sk], capture_output=True, timeout=300)
            sources |= {f.name: Image.open(f).convert("RGB") for f in Path(tmp).glob("sk_*.png")}
        folder = Path(tmp, "files")
        folder.mkdir()
        for n, im in sources.items():
            stem, (w, h) = Path(n).stem, im.size
            im.save(folder / f"{stem}.jpg", quality=92)
            im.resize((round(w * 0.71), round(h * 0.71)), Image.Resampling.BILINEAR).save(folder / f"{stem}_resized.jpg", quality=85)
            im.save(folder / f"{stem}_q60.jpg", quality=60)
            ImageEnhance.Brightness(im).enhance(1.08).save(folder / f"{stem}_brighter.jpg", quality=90)
            im.save(folder / f"{stem}.png")
        out = subprocess.run([sys.executable, "-c", DRIFT, str(folder)], env={**os.environ, "PYTHONPATH": str(code)},
                             cwd=CACHE, check=True, capture_output=True, text=True).stdout
        ours = json.loads(out.strip().splitlines()[-1])
        bits = [(int(h, 16) ^ int(str(imagehash.phash(Image.open(folder / n))), 16)).bit_count() for n, h in ours.items()]
    return (f"hash drift vs plain imagehash, {len(sources)} real photos x 5 variants ({', '.join(sorted(sources))}): "
            f"max {max(bits)} bits, mean {np.mean(bits):.2f} (target <= 2)")


def encoder_table(folder: Path, n: int) -> None:
    """Ways of writing bucket-sized images at base 1024: CPU ms per image (resize + encode; the decode is the
    same for all), KB per image, PSNR against a Lanczos resize kept lossless (the old PNG output)."""
    import numpy as np
    from PIL import Image

    from pistachio_nb.dataset.buckets import fit_bucket, sdxl_buckets
    from pistachio_nb.dataset.layout import fit_array, jpeg_bytes

    L, C = Image.Resampling.LANCZOS, Image.Resampling.BICUBIC
    ways = {
        "PNG level 1, Lanczos (before)": (L, dict(format="PNG", compress_level=1)),
        "PNG level 0, Lanczos": (L, dict(format="PNG", compress_level=0)),
        "WebP lossless method 0, Lanczos": (L, dict(format="WEBP", lossless=True, method=0, quality=0)),
        "WebP q90 method 0, bicubic": (C, dict(format="WEBP", quality=90, method=0)),
        "JPEG q90 4:2:0, bicubic": (C, dict(format="JPEG", quality=90)),
        "JPEG q95 4:4:4, Lanczos": (L, dict(format="JPEG", quality=95, subsampling=0)),
        "JPEG q95 4:4:4, bilinear": (Image.Resampling.BILINEAR, dict(format="JPEG", quality=95, subsampling=0)),
        "JPEG q95 4:4:4, bicubic (before)": (C, dict(format="JPEG", quality=95, subsampling=0)),
        "OpenCV JPEG q95 4:4:4 (chosen)": (None, None),
    }
    stats: dict[str, list[tuple[float, float, float]]] = {k: [] for k in ways}
    decode_ms, source_kb = [], []
    for f in sorted(folder.glob("*.jpg"))[:n]:
        t = time.process_time()
        im = Image.open(f)
        im.load()
        decode_ms.append((time.process_time() - t) * 1000)
        source_kb.append(f.stat().st_size / 1024)
        fit = fit_bucket(*im.size, sdxl_buckets(1024))
        box = (fit.left, fit.top, fit.left + fit.bucket[0], fit.top + fit.bucket[1])
        ref = np.asarray(im.resize(fit.resized, L).crop(box), dtype=np.float32)
        for name, (resample, save) in ways.items():
            t = time.process_time()
            if resample is None:  # what layout.render does
                data = jpeg_bytes(fit_array(np.asarray(im), fit))
            else:
                buf = io.BytesIO()
                im.resize(fit.resized, resample).crop(box).save(buf, **save)
                data = buf.getvalue()
            ms = (time.process_time() - t) * 1000
            back = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32)
            mse = float(np.mean((back - ref) ** 2))
            stats[name].append((ms, len(data) / 1024, 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)))
    print(f"\nwriting {n} bucket-sized images at base 1024 (decode {statistics.median(decode_ms):.1f} ms CPU each, same for all; "
          f"load average {os.getloadavg()[0]:.1f}):")
    print(f"{'way':34s} {'CPU ms':>7s} {'KB':>6s} {'PSNR dB':>8s}")
    for name, values in stats.items():
        ms, kb, psnr = (statistics.median(v) for v in zip(*values))
        print(f"{name:34s} {ms:7.1f} {kb:6.0f} {psnr:8.1f}")
    print(f"{'source copy, no resize (trainer crops)':34s} {0.0:7.1f} {statistics.median(source_kb):6.0f} {'n/a':>8s}")


def median(rounds: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="JPEGs for the speed rows")
    ap.add_argument("--small", type=int, default=500, help="the small folder of the memory row")
    ap.add_argument("--large", type=int, default=6000, help="the large folder of the memory and copies rows")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the interleaved jobs; medians reported")
    ap.add_argument("--write-rounds", type=int, default=None, help="rounds of the full stage (default: --rounds; 0 skips it)")
    ap.add_argument("--code", type=Path, default=REPO, help="checkout whose pistachio_nb is measured")
    ap.add_argument("--before", type=Path, help="a second checkout measured in the same rounds (jobs marked @before)")
    ap.add_argument("--no-imagededup", action="store_true", help="skip the imagededup peer")
    ap.add_argument("--encoders", type=int, default=0, help="also compare ways of writing this many bucket images")
    args = ap.parse_args()
    big = make_folder(args.large)
    main_folder, small = subset_folder(big, args.n), subset_folder(big, args.small)
    peer, note = (None, "imagededup skipped (--no-imagededup)") if args.no_imagededup else peer_python()
    write_rounds = args.rounds if args.write_rounds is None else args.write_rounds
    codes = {"": args.code.resolve(), **({"@before": args.before.resolve()} if args.before else {})}
    ours = [(f"ours{tag}", folder) for folder in (main_folder, small, big) for tag in codes]
    plan = [("plain", main_folder), *ours[:len(codes)]] + ([("imagededup", main_folder)] if peer else []) + ours[len(codes):]
    results: dict[tuple[str, int], list[dict]] = {}
    loads = [os.getloadavg()[0]]
    for i in range(max(args.rounds, write_rounds)):
        todo = (plan if i < args.rounds else []) + ([("imagededup", big)] if peer and i == 0 else [])  # copies row: one run
        todo += [(f"{full}{tag}", main_folder) for tag in codes for full in ("full", "full-noface")] if i < write_rounds else []
        for label, folder in todo:
            kind, _, tag = label.partition("@")
            r = job(kind, folder, codes["@" + tag if tag else ""], peer)
            results.setdefault((label, r["files"]), []).append(r)
            loads.append(r["load"])
            print(f"round {i + 1}: {label:14s} {r['files']:5d} files {r['seconds']:7.2f} s  {r['rss_mb']:5.0f} MB  load {r['load']:.1f}", file=sys.stderr)
    named = ", ".join(f"ours{k}={v}" for k, v in codes.items())
    print(f"code: {named}; {note}; {psutil.cpu_count()} CPUs; load average during "
          f"the run {min(loads):.1f}-{max(loads):.1f} (median {statistics.median(loads):.1f}); medians of {args.rounds} interleaved rounds")
    print(f"{'job':14s} {'files':>6s} {'seconds':>8s} {'images/s':>9s} {'CPU s':>7s} {'tree RSS':>9s} {'left':>5s} {'found':>9s} {'marked':>7s} {'precision':>9s}")
    for (label, files), rounds in results.items():
        found = f"{rounds[0]['found']}/{len(planted(big if files == args.large else subset_folder(big, files)))}" if "found" in rounds[0] else "-"
        print(f"{label:14s} {files:6d} {median(rounds, 'seconds'):8.2f} {files / median(rounds, 'seconds'):9.1f} {median(rounds, 'cpu_seconds'):7.1f} "
              f"{max(r['rss_mb'] for r in rounds):8.0f}M {max(r['left_behind'] for r in rounds):5d} {found:>9s} "
              f"{rounds[0].get('marked', 0):7d} {rounds[0].get('precision', 0):9.3f}")
    n = args.n
    for tag, code in codes.items():
        report_rows(results, tag, args, n, big, main_folder)
        print("  " + real_photo_drift(code, peer))
    if args.encoders:
        encoder_table(main_folder, args.encoders)


def report_rows(results: dict, tag: str, args: argparse.Namespace, n: int, big: Path, main_folder: Path) -> None:
    """Issue 17's rows for one checkout: each a ratio of the same round's runs, the median over the rounds."""
    def ratio(peer_kind: str) -> str:
        per_round = [p["seconds"] / o["seconds"] for p, o in zip(results[(peer_kind, n)], results[(f"ours{tag}", n)])]
        return f"{statistics.median(per_round):.2f}x (rounds: {', '.join(f'{x:.2f}' for x in per_round)})"

    print(f"\nissue 17's rows, {'the checkout before' if tag else 'this checkout'}:")
    print(f"  ingest+dedup vs plain imagehash (images/s, whole processes, {n} files): {ratio('plain')}  target >= 5x")
    if ("imagededup", n) in results:
        print(f"  ingest+dedup vs imagededup PHash (its default workers, {n} files): {ratio('imagededup')}  target >= 4x")
    rss = {files: max(r["rss_mb"] for r in results[(f"ours{tag}", files)]) for files in (args.small, n, args.large)}
    left = [(r["left_behind"], r["lingered_s"]) for key, rs in results.items() if key[0] == f"ours{tag}" for r in rs]
    print(f"  peak summed RSS of the process tree: {', '.join(f'{v:.0f} MB at {k}' for k, v in rss.items())}  target < 200 MB, flat; "
          f"processes still running after the run ended: up to {max(x[0] for x in left)}, gone within {max(x[1] for x in left):.2f} s")
    for files, folder in ((n, main_folder), (args.large, big)):
        line = ", ".join(f"{k.split('@')[0]} {results[(k, files)][0]['found']}/{len(planted(folder))} (precision {results[(k, files)][0]['precision']:.3f})"
                         for k in (f"ours{tag}", "plain", "imagededup") if (k, files) in results)
        print(f"  known copies found at {files}: {line}")
    if (f"full{tag}", n) in results:
        full = results[(f"full{tag}", n)]
        each = ", ".join(f"{r['seconds']:.1f}" for r in full)
        print(f"  full 01_dataset at base 1024, {n} files: {median(full, 'seconds'):.1f} s (rounds: {each}), "
              f"{full[0]['written']} images, {full[0]['disk_gb']:.2f} GB on disk, peak {max(r['rss_mb'] for r in full):.0f} MB  target <= 40 s")
        off = results[(f"full-noface{tag}", n)]
        each = ", ".join(f"{r['seconds']:.1f}" for r in off)
        print(f"  the same with the face check off (face_embedder: none, crop: centre): {median(off, 'seconds'):.1f} s "
              f"(rounds: {each}), peak {max(r['rss_mb'] for r in off):.0f} MB")


if __name__ == "__main__":
    main()
