"""Downloads over local HTTP: throughput, resume after a cut, and what the verified-stamp saves on reruns.

Prints MiB/s for a fresh download, the bytes actually transferred on a resume, the rerun time with
the stamp (no hashing) and without it (full sha256); then the same for a hub snapshot (huggingface_hub
against the testkit's local hub: download + verify, and a rerun through the verified lock, with the
number of hub requests it made). Run: .venv/bin/python tests/benchmarks/bench_downloads.py [MiB]
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

from pistachio_nb.downloads import ensure_models, load_manifest
from pistachio_testkit.fileserver import RangeFileHandler, serve_folder
from pistachio_testkit.hub_server import serve_hub

SIZE_MIB = int(sys.argv[1]) if len(sys.argv) > 1 else 256


class CountingHandler(RangeFileHandler):
    def send_body(self, path, start, end):
        self.server.sent += end - start + 1
        super().send_body(path, start, end)


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-downloads-"))
    data = os.urandom(SIZE_MIB << 20)
    (tmp / "remote").mkdir()
    (tmp / "remote" / "big.safetensors").write_bytes(data)
    with serve_folder(tmp / "remote", handler=CountingHandler) as server:
        server.sent = 0
        manifest = tmp / "m.yaml"
        manifest.write_text(yaml.safe_dump({"models": [{
            "name": "big", "source": {"url": f"{server.url}/big.safetensors"}, "dest": "checkpoints",
            "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}]}))
        models = tmp / "models"

        def timed(label: str) -> float:
            start = time.perf_counter()
            status = ensure_models(manifest, models)["status"][0]
            seconds = time.perf_counter() - start
            print(f"{label:<34} {status:<10} {seconds:7.2f} s")
            return seconds

        fresh = timed("fresh download")
        print(f"{'  throughput (incl. sha256)':<34} {SIZE_MIB / fresh:7.1f} MiB/s")
        timed("rerun, stamp valid (no hashing)")
        entry = load_manifest(manifest, models)[0]
        entry.stamp.unlink()
        timed("rerun, no stamp (full sha256)")
        entry.dest.rename(entry.part)
        with entry.part.open("r+b") as fh:
            fh.truncate(len(data) // 3)
        server.sent = 0
        timed("resume from 1/3")
        print(f"{'  bytes sent on resume':<34} {server.sent / len(data):7.1%} of the file")
    bench_hub(tmp, data)


def bench_hub(tmp: Path, data: bytes) -> None:
    """The same file as a hub repo's weights, with two small files beside it, through `hub:`."""
    repo = tmp / "hub-repo"
    (repo / "unet").mkdir(parents=True)
    (repo / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(data)
    (repo / "unet" / "config.json").write_text("{}")
    (repo / "model_index.json").write_text("{}")
    os.environ["HF_HOME"] = str(tmp / "hf-home")
    hub = serve_hub({"bench/model": repo})
    try:
        manifest = tmp / "hub.yaml"
        manifest.write_text(yaml.safe_dump({"hub_endpoint": hub.url, "hub": [
            {"name": "model", "repo": "bench/model", "revision": hub.commit("bench/model")}]}))
        for label in ("hub snapshot: fresh (+ verify)", "hub snapshot: rerun (verified lock)"):
            asked, start = len(hub.requests), time.perf_counter()
            status = ensure_models(manifest, tmp / "models")["status"][0]
            seconds = time.perf_counter() - start
            print(f"{label:<34} {status:<10} {seconds:7.2f} s  {len(hub.requests) - asked} hub requests")
    finally:
        hub.close()


if __name__ == "__main__":
    main()
