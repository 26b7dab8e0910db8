"""run_batch on the real ComfyUI with model-free graphs: kill the server midway, restart it, rerun.

The batch code fills a sampling workflow (checkpoint, prompts, KSampler); here each job's graph is
EmptyImage -> ImageScale -> SaveImage instead (seconds per job on a CPU, no model), substituted for
`ComfyBackend.graph`; everything else (submit, wait, manifest, resume, retries) is the product's.
"""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import pytest
from PIL import Image

from pistachio_nb.batch import run_batch
from pistachio_nb.batch import BatchParams
from pistachio_nb.batch.backends import ComfyBackend
from pistachio_nb.batch.jobs import Job
from pistachio_nb.comfy.client import ComfyClient
from pistachio_nb.comfy.errors import PromptLostError
from pistachio_nb.files import read_jsonl
from pistachio_testkit import real_comfyui

pytestmark = pytest.mark.comfyui_real
PROMPTS = "prompt,seeds\npstchio character smiling,1;2;3;4\npstchio character in a forest,5;6;7;8\n"


def model_free_graph(self: ComfyBackend, job: Job) -> dict:
    """One job as a model-free graph: a seed-coloured picture, upscaled (the slow part), saved under its job id."""
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": job.width, "height": job.height, "batch_size": 1,
                                                          "color": job.seed * 2654435761 % 0xFFFFFF}},
            "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "lanczos",
                                                          "width": 768, "height": 768, "crop": "disabled"}},
            "3": {"class_type": "ImageScale", "inputs": {"image": ["2", 0], "upscale_method": "area",
                                                          "width": job.width, "height": job.height, "crop": "disabled"}},
            "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": f"pistachio/{job.job_id}"}}}


@pytest.fixture(scope="module")
def own_comfy(comfy_install):
    """A real server of this module's own: these tests kill and restart it."""
    with real_comfyui.start() as srv:
        yield srv


def params(tmp_path, url: str, **over) -> BatchParams:
    (tmp_path / "prompts.csv").write_text(PROMPTS)
    values = dict(
        workspace=tmp_path / "ws", prompts_file=tmp_path / "prompts.csv", batch_name="real", backends=["comfyui"],
        servers=[url], workflow="txt2img_lora", comfy_checkpoint="none.safetensors", comfy_lora="", model="tiny:sdxl",
        lora="none", negative="blurry", count=1, base_seed=0, lora_strength=0.8, width=64, height=64, steps=3, cfg=5.0,
        jobs_per_server=2, retries=1, backoff_seconds=0.2, job_timeout_seconds=60, request_timeout_seconds=5)
    return BatchParams(**{**values, **over})


def kill_after_done(srv, manifest, n: int) -> None:
    """SIGKILL the server once the manifest records `n` finished jobs (a pod dying mid-batch)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(r["state"] == "done" for r in read_jsonl(manifest)) < n:
        time.sleep(0.02)
    srv.kill()


def test_kill_restart_rerun_loses_and_duplicates_nothing(own_comfy, tmp_path, monkeypatch):
    monkeypatch.setattr(ComfyBackend, "graph", model_free_graph)
    p = params(tmp_path, own_comfy.url)
    manifest = p.ws.batches / "real" / "manifest.jsonl"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.touch()
    killer = threading.Thread(target=kill_after_done, args=(own_comfy, manifest, 2), daemon=True)
    killer.start()
    first = run_batch(p)
    killer.join()
    states = first.table["state"].tolist()
    assert 2 <= states.count("done") < 8 and "failed" in states, states  # the kill hit mid-batch
    own_comfy.restart()
    second = run_batch(p)
    table = second.table
    assert table["state"].tolist() == ["done"] * 8, table.to_string()
    assert second.summary.loc["skipped", "jobs"] == states.count("done")
    images = sorted(x.name for x in (second.folder / "images").iterdir())
    assert images == sorted(f"{j}_0.png" for j in table["job_id"])  # one per job: 0 lost, 0 duplicated
    for row in table.itertuples():
        with Image.open(second.folder / "images" / row.files[0]) as image:
            assert json.loads(image.text["pistachio"])["job_id"] == row.job_id
            assert image.size == (64, 64)


def test_a_prompt_unknown_after_restart_is_prompt_lost(own_comfy, monkeypatch):
    with ComfyClient(own_comfy.url) as client:
        job = SimpleNamespace(width=64, height=64, seed=3, job_id="lost")
        result = client.run(model_free_graph(None, job), timeout=60)
        assert client.history(result.prompt_id) is not None
    own_comfy.kill()
    own_comfy.restart()
    with ComfyClient(own_comfy.url) as client:
        assert client.history(result.prompt_id) is None  # the real server forgets everything on restart
        with pytest.raises(PromptLostError, match="no longer knows"):
            client.wait(result.prompt_id, timeout=10, poll=True)
