"""Benchmark the ComfyUI client and batch scheduler against test servers running in their own processes.

1. Client overhead per job with instant jobs: wall time per job (client + server + localhost round
   trips) and the client process's CPU time per job (what our code costs). Target: < 5 ms/job.
2. Throughput with 1 vs 3 servers whose jobs take 0.5 s each. Target: >= 2.7x.
Run: `.venv/bin/python tests/benchmarks/bench_comfy.py`.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psutil
import requests

from pistachio_nb.batch import run_batch
from pistachio_nb.comfy import ComfyClient, fill, load_workflow
from pistachio_nb.batch import BatchParams

OVERHEAD_JOBS = 100
THROUGHPUT_JOBS = 24
JOB_SECONDS = 0.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server_process(delay: float):
    """A test server in its own process (like a real ComfyUI); yields its URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pistachio_testkit.comfy_server", "--port", str(port),
                             "--delay", str(delay)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                requests.get(f"{url}/queue", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        yield url, psutil.Process(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)


def client_overhead(url: str, server: psutil.Process) -> list[float]:
    """(wall, client CPU, server CPU) ms/job for submit + wait on the WebSocket + download, instant jobs."""
    graph = fill(load_workflow("txt2img_lora"), checkpoint="tiny-sdxl.safetensors", width=64, height=64, steps=4)
    with ComfyClient(url) as client:
        client.view(client.run(fill(graph, seed=10**6), 30).images[0])  # warm: socket, connection pool
        wall, cpu, server_cpu = time.perf_counter(), time.process_time(), sum(server.cpu_times()[:2])
        for seed in range(OVERHEAD_JOBS):
            result = client.run(fill(graph, seed=seed), 30)
            client.view(result.images[0])
        return [(t1 - t0) * 1000 / OVERHEAD_JOBS for t0, t1 in ((wall, time.perf_counter()), (
            cpu, time.process_time()), (server_cpu, sum(server.cpu_times()[:2])))]


def batch_params(workspace: Path, servers: list[str], name: str, jobs: int) -> BatchParams:
    prompts = workspace / "prompts.yaml"
    prompts.write_text("- prompt: photo of pstchio character\n", encoding="utf-8")
    return BatchParams(
        workspace=workspace, prompts_file=prompts, batch_name=name, backends=["comfyui"], servers=servers,
        workflow="txt2img_lora", comfy_checkpoint="tiny-sdxl.safetensors", comfy_lora="character.safetensors",
        model="tiny:sdxl", lora="none", negative="", count=jobs, base_seed=0, lora_strength=1.0, width=64, height=64,
        steps=4, cfg=5.0, jobs_per_server=2, retries=2, backoff_seconds=0.5, job_timeout_seconds=60,
        request_timeout_seconds=10)


def batch_seconds(workspace: Path, servers: list[str], name: str, jobs: int) -> tuple[float, float]:
    """(wall seconds, client CPU seconds) of one run_batch."""
    start, cpu = time.perf_counter(), time.process_time()
    result = run_batch(batch_params(workspace, servers, name, jobs))
    assert int(result.summary.loc["done", "jobs"]) == jobs, result.table
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        instant, instant_proc = stack.enter_context(server_process(0.0))
        wall, cpu, server_cpu = client_overhead(instant, instant_proc)
        print(f"instant jobs ({OVERHEAD_JOBS}): client overhead {cpu:.2f} ms/job CPU [target < 5 ms]; "
              f"round trip {wall:.2f} ms/job wall, of which test server CPU {server_cpu:.2f} ms/job; "
              f"load average {psutil.getloadavg()[0]:.1f} on {psutil.cpu_count()} cores")
        wall, cpu = (x * 1000 / OVERHEAD_JOBS for x in batch_seconds(Path(tmp), [instant], "instant", OVERHEAD_JOBS))
        print(f"run_batch, instant jobs (manifest fsyncs, PNG metadata, progress included): {cpu:.2f} ms/job CPU, "
              f"{wall:.2f} ms/job wall")
        slow = [stack.enter_context(server_process(JOB_SECONDS))[0] for _ in range(3)]
        one = batch_seconds(Path(tmp), slow[:1], "one", THROUGHPUT_JOBS)[0]
        three = batch_seconds(Path(tmp), slow, "three", THROUGHPUT_JOBS)[0]
        print(f"{THROUGHPUT_JOBS} jobs of {JOB_SECONDS}s: 1 server {one:.2f}s, 3 servers {three:.2f}s -> "
              f"{one / three:.2f}x throughput  [target >= 2.7x]")


if __name__ == "__main__":
    main()
