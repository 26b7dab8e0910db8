"""The generation API against the real ComfyUI: submit, poll, fetch; readiness follows the real server's health.

As in test_real_batch, each job's graph is the model-free one (no checkpoint on a CPU test server); the API,
store, scheduler, client and PNG writing are the product's.
"""

from __future__ import annotations

import pytest
import requests
from PIL import Image

from pistachio_nb.batch.backends import ComfyBackend
from tests.integration.test_real_batch import model_free_graph
from tests.serve_world import api_for, auth, submit, wait_done

pytestmark = pytest.mark.comfyui_real


def test_a_generation_round_trip_through_the_real_comfyui(real_comfy, tmp_path, monkeypatch):
    monkeypatch.setattr(ComfyBackend, "graph", model_free_graph)
    monkeypatch.setattr(ComfyBackend, "prepare", lambda self, sample: [])  # the template names a checkpoint it lacks
    with api_for(tmp_path, [real_comfy.url], serve={"ready_cache_seconds": 0}) as (url, _):
        ready = requests.get(f"{url}/readyz", timeout=10).json()
        assert ready["ready"] is True and ready["servers"] == {real_comfy.url: True}
        jobs = [wait_done(url, submit(url, seed=s, width=128, height=64).json()["id"], limit_s=120) for s in (1, 2)]
        assert [j["state"] for j in jobs] == ["done", "done"]
        png = requests.get(jobs[0]["images"][0], headers=auth(), timeout=10)
        path = tmp_path / "real.png"
        path.write_bytes(png.content)
        with Image.open(path) as img:
            assert img.size == (128, 64) and "pistachio" in img.text and "prompt" in img.text
