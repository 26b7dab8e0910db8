"""Load benchmark of `pistachio serve` on 127.0.0.1: N concurrent clients submit and poll against instant jobs.

The API runs as its own process (the real CLI), the ComfyUI imitation in another (jobs take no time), the
clients are threads here. Reports submit latency p50/p99, jobs/s end to end, and lost/duplicated jobs
(read back from the job store). Bounded: CLIENTS x JOBS_EACH jobs, at most LIMIT_S seconds.
Targets (2-core machine): p99 submit < 50 ms at 50 clients; 0 lost, 0 duplicated.
Run: `.venv/bin/python tests/benchmarks/bench_serve.py [--clients 50] [--jobs-each 4] [--ramp 0]` (`--ramp 2`: the
clients start over 2 s instead of all in the same instant).
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from bench_comfy import server_process

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.serve_world import ENV, KEY_A, write_profile  # noqa: E402
from tests.test_serve_restart import start_api  # noqa: E402
from pistachio_testkit.real_comfyui import free_port  # noqa: E402

LIMIT_S = 300
POLL_S = 0.25  # a chatbot backend polling four times a second per waiting user


def client(url: str, jobs: int, latencies: list[float], ids: list[str], errors: list[str], delay: float = 0.0) -> None:
    """After `delay` s, submit `jobs` jobs one after another, polling each until done (a user waiting for a picture)."""
    time.sleep(delay)
    with requests.Session() as s:
        s.headers["Authorization"] = f"Bearer {KEY_A}"
        for _ in range(jobs):
            t0 = time.perf_counter()
            r = s.post(f"{url}/v1/generations", json={"prompt": "pstchio character"}, timeout=30)
            latencies.append(time.perf_counter() - t0)
            if r.status_code != 202:
                errors.append(f"{r.status_code} {r.text[:100]}")
                continue
            job_id = r.json()["id"]
            ids.append(job_id)
            deadline = time.monotonic() + LIMIT_S
            while time.monotonic() < deadline and s.get(f"{url}/v1/generations/{job_id}", timeout=30).json()["state"] not in ("done", "failed"):
                time.sleep(POLL_S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--jobs-each", type=int, default=4)
    parser.add_argument("--ramp", type=float, default=0.0, help="spread the clients' starts over this many seconds (0: all at once)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, server_process(0.0) as (comfy_url, _), \
            open(Path(tmp) / "api.log", "wb") as log:
        profile = write_profile(Path(tmp), [comfy_url], serve={"rate_per_minute": 100000, "burst": 100000,
                                                               "daily_quota": 10**6}, jobs_per_server=4)
        port = free_port()
        api = start_api(profile, port, log)
        url = f"http://127.0.0.1:{port}"
        latencies: list[float] = []
        ids: list[str] = []
        errors: list[str] = []
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(url, args.jobs_each, latencies, ids, errors, args.ramp * i / args.clients))
                   for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(LIMIT_S)
        seconds = time.perf_counter() - t0
        load1 = os.getloadavg()[0]
        api.send_signal(signal.SIGTERM)
        api.wait(30)
        with sqlite3.connect(Path(tmp) / "ws" / "serve" / "jobs.sqlite3") as con:
            rows = dict(con.execute("SELECT id, state FROM jobs").fetchall())
        images = list((Path(tmp) / "ws" / "serve" / "images").glob("*.png"))
    expected = args.clients * args.jobs_each
    done = sum(state == "done" for state in rows.values())
    lat = sorted(latencies)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    print(f"{args.clients} clients x {args.jobs_each} jobs, starts spread over {args.ramp:g} s, load average {load0:.2f} -> {load1:.2f}")
    print(f"submit latency: p50 {statistics.median(lat) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms "
          f"(target p99 < 50 ms)")
    print(f"throughput: {done / seconds:.1f} jobs/s end to end ({done} done in {seconds:.1f} s)")
    print(f"lost: {expected - len(rows)} (submitted {expected}, stored {len(rows)}), not done: {len(rows) - done}, "
          f"duplicated: {len(ids) - len(set(ids))}, images {len(images)} for {done} jobs, errors {len(errors)}")


if __name__ == "__main__":
    main()
