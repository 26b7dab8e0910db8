"""A dead ComfyUI server never stalls a batch: capped rests, jobs move to live servers, bounded failure time."""

import socket
import threading
import time

from pistachio_nb.batch import run_batch
from pistachio_nb.files import read_jsonl
from pistachio_nb.batch.scheduler import REST_CAP_SECONDS, Scheduler, Target
from pistachio_testkit.comfy_exec import Behaviour
from pistachio_testkit.comfy_server import ComfyTestServer
from tests.test_batch_run import kill_after_done, params

TWELVE = "prompt,seeds\npstchio character,1;2;3;4;5;6;7;8;9;10;11;12\n"


def dead_url() -> str:
    """A local port nothing listens on (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def run_bounded(p, limit_s: float):
    """run_batch in a thread; the test fails (instead of hanging) when it is still running after `limit_s`."""
    box = {}
    worker = threading.Thread(target=lambda: box.update(result=run_batch(p), done=time.monotonic()), daemon=True)
    start = time.monotonic()
    worker.start()
    worker.join(limit_s)
    assert not worker.is_alive(), f"batch still running after {limit_s}s (stalled on a dead server)"
    return box["result"], box["done"] - start


def test_batch_on_a_server_that_died_fails_its_jobs_within_the_stated_bound(tmp_path):
    srv = ComfyTestServer(behaviour=Behaviour(delay=0.1)).start()
    p = params(tmp_path, [srv.url], prompts=TWELVE, retries=3, backoff_seconds=0.2, jobs_per_server=2)
    killer = threading.Thread(target=kill_after_done, args=(srv, p.ws.batches / "b" / "manifest.jsonl", 2))
    killer.start()
    result, seconds = run_bounded(p, 30)
    killer.join()
    table = result.table
    failed = table[table["state"] == "failed"]
    assert (table["state"] == "done").sum() >= 2 and len(failed) >= 6
    assert set(failed["attempts"]) == {4}  # each failed job had its retries + 1 attempts, no more, no fewer
    # stated bound (Scheduler.run): delays 0.2 + 0.4 + 0.8 s, waits 0.2 + 0.4 + 0.8 + 1.6 s, refused attempts instant
    assert seconds < 4.4 + 5, seconds


def test_jobs_go_to_the_live_server_and_probes_of_the_dead_one_cost_no_attempts(tmp_path):
    with ComfyTestServer(behaviour=Behaviour(delay=0.05)) as live:
        p = params(tmp_path, [live.url, dead_url()], prompts=TWELVE, retries=0, backoff_seconds=0.05, jobs_per_server=2)
        result, _ = run_bounded(p, 30)
        assert live.engine.number == 12  # every job ran on the live server, each once
    table = result.table
    assert list(table["state"]) == ["done"] * 12  # retries=0, yet no job failed because of the dead server
    assert set(table["server"]) == {live.url}


def restart_after_done(srv, manifest, n, down_seconds):
    """Crash the server once `n` jobs are done and bring it back on the same port `down_seconds` later."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and sum(r["state"] == "done" for r in read_jsonl(manifest)) < n:
        time.sleep(0.01)
    srv.restart(down_seconds)


def test_a_server_that_comes_back_gets_jobs_again(tmp_path):
    with ComfyTestServer(behaviour=Behaviour(delay=0.1)) as srv:
        p = params(tmp_path, [srv.url], prompts=TWELVE, retries=8, backoff_seconds=0.2, jobs_per_server=2)
        restarter = threading.Thread(target=restart_after_done, args=(srv, p.ws.batches / "b" / "manifest.jsonl", 2, 1.0))
        restarter.start()
        result, seconds = run_bounded(p, 30)
        restarter.join()
    assert list(result.table["state"]) == ["done"] * 12
    assert seconds < 15


def test_server_rest_is_capped_and_counts_outages_not_jobs(tmp_path):
    from pistachio_nb.batch.manifest import Manifest
    from pistachio_nb.batch.scheduler import Pending
    from pistachio_nb.comfy.errors import ComfyConnectionError

    sched = Scheduler(Manifest(tmp_path / "m.jsonl"), tmp_path, retries=50, backoff=1.0)
    target = Target(backend=object(), name="dead", capacity=2)
    sched._targets = [target]
    job = type("J", (), {"job_id": "j"})()
    rests = []
    for n in range(12):
        item = Pending(job, target.backend, attempts=n + 1)
        target.down_until = 0.0  # each failure arrives after the rest ended: a new outage
        assert sched._settle(item, target, ComfyConnectionError("refused"))
        rests.append(round(target.down_until - time.monotonic()))
        assert item.ready_at - time.monotonic() <= REST_CAP_SECONDS
    assert rests[:4] == [1, 2, 4, 8] and max(rests) == REST_CAP_SECONDS  # was 1024 s after 11 outages
    before = target.down_until
    assert sched._settle(Pending(job, target.backend, attempts=1), target, ComfyConnectionError("refused"))
    assert target.down_until == before  # a second job failing in the same outage does not double the rest
