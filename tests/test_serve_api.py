"""The generation API over real HTTP on loopback, against the ComfyUI imitation: jobs, auth, limits, isolation."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import requests
from PIL import Image

from pistachio_nb.errors import ParamsError
from pistachio_nb.serve.service import load_service
from pistachio_nb.serve.webhook import SIGNATURE_HEADER
from pistachio_testkit.comfy_exec import Behaviour
from pistachio_testkit.comfy_server import ComfyTestServer
from tests.serve_world import ENV, KEY_A, KEY_B, api_for, auth, submit, wait_done, write_profile
from tests.test_reliability_batch import dead_url


@pytest.fixture
def comfy():
    with ComfyTestServer(behaviour=Behaviour(delay=0.05)) as srv:
        yield srv


def test_submit_poll_fetch_gives_the_png_with_its_prompt_and_seed(comfy, tmp_path):
    with api_for(tmp_path, [comfy.url]) as (url, service):
        answer = submit(url, prompt="pstchio character at the beach", width=128, height=64)
        assert answer.status_code == 202 and answer.headers["Location"] == f"/v1/generations/{answer.json()['id']}"
        queued = answer.json()
        assert queued["state"] in ("queued", "running") and 0 <= queued["request"]["seed"] < 2**32
        job = wait_done(url, queued["id"])
        assert job["state"] == "done" and job["attempts"] == 1 and len(job["images"]) == 1
        png = requests.get(job["images"][0], headers=auth(), timeout=10)
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        path = tmp_path / "got.png"
        path.write_bytes(png.content)
        with Image.open(path) as img:
            assert img.size == (128, 64)
            meta = json.loads(img.text["pistachio"])
        assert meta["prompt"] == "pstchio character at the beach" and meta["seed"] == queued["request"]["seed"]
        graph = comfy.engine.history[next(iter(comfy.engine.history))]["prompt"][2]
        assert any(n["inputs"].get("seed") == queued["request"]["seed"] for n in graph.values())


@pytest.mark.parametrize("headers", [{}, {"Authorization": f"Basic {KEY_A}"}, {"Authorization": "Bearer not-a-key"},
                                     {"Authorization": f"Bearer {KEY_A}x"}])
def test_a_missing_or_wrong_key_is_401_with_the_bearer_challenge(comfy, tmp_path, headers):
    with api_for(tmp_path, [comfy.url]) as (url, _):
        got = requests.post(f"{url}/v1/generations", json={"prompt": "x"}, headers=headers, timeout=10)
        assert got.status_code == 401 and got.headers["WWW-Authenticate"] == "Bearer"
        assert requests.get(f"{url}/v1/generations/abc", headers=headers, timeout=10).status_code == 401


@pytest.mark.parametrize("body, field", [
    ({"width": 1000}, "width"),                       # not on the SDXL grid of 64
    ({"height": 4096}, "height"),                     # beyond max_side
    ({"prompt": "x" * 1001}, "prompt"),               # beyond max_prompt_chars
    ({"workflow": "../../etc/passwd"}, "workflow"),   # only the allow-list
    ({"lora_strength": 9}, "lora_strength"),
    ({"webhook_url": "http://127.0.0.1:1/x"}, "webhook_url"),  # webhooks are off here
    ({"checkpoint": "/etc/passwd"}, "checkpoint"),    # no such field: nothing from clients names files
    ({"seed": -1}, "seed"),
])
def test_bad_input_is_422_naming_the_field_and_makes_no_job(comfy, tmp_path, body, field):
    with api_for(tmp_path, [comfy.url]) as (url, service):
        got = submit(url, **body)
        assert got.status_code == 422
        assert ["body", field] in [e["loc"] for e in got.json()["detail"]], got.json()
        assert service.store.counts() == {}


def test_rate_limit_then_daily_quota_answer_429(comfy, tmp_path):
    with api_for(tmp_path, [comfy.url], serve={"burst": 2, "rate_per_minute": 1}) as (url, _):
        assert [submit(url).status_code for _ in range(3)] == [202, 202, 429]
        limited = submit(url)
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert submit(url, key=KEY_B).status_code == 202  # buckets are per key
    with api_for(tmp_path / "q", [comfy.url], serve={"daily_quota": 2, "rate_per_minute": 6000, "burst": 100}) as (url, _):
        assert [submit(url).status_code for _ in range(3)] == [202, 202, 429]
        assert "quota" in submit(url).json()["detail"]


def test_one_key_never_sees_another_keys_job_or_images(comfy, tmp_path):
    with api_for(tmp_path, [comfy.url]) as (url, _):
        job = wait_done(url, submit(url, prompt="private prompt of A").json()["id"])
        for path in (f"/v1/generations/{job['id']}", f"/v1/generations/{job['id']}/images/0"):
            other = requests.get(url + path, headers=auth(KEY_B), timeout=10)
            assert other.status_code == 404 and "private prompt" not in other.text
        assert requests.get(f"{url}/v1/generations/{job['id']}/images/1", headers=auth(), timeout=10).status_code == 404


def test_the_same_idempotency_key_gives_the_same_job_even_when_racing(comfy, tmp_path):
    with api_for(tmp_path, [comfy.url]) as (url, service):
        def post(_):
            return requests.post(f"{url}/v1/generations", json={"prompt": "pstchio once"},
                                 headers={**auth(), "Idempotency-Key": "msg-42"}, timeout=10)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(post, range(8)))
        assert {a.status_code for a in answers} == {202} and len({a.json()["id"] for a in answers}) == 1
        assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 7
        changed = requests.post(f"{url}/v1/generations", json={"prompt": "another"},
                                headers={**auth(), "Idempotency-Key": "msg-42"}, timeout=10)
        assert changed.status_code == 409
        other_key = requests.post(f"{url}/v1/generations", json={"prompt": "pstchio once"},
                                  headers={**auth(KEY_B), "Idempotency-Key": "msg-42"}, timeout=10)
        assert other_key.status_code == 202 and other_key.json()["id"] != answers[0].json()["id"]
        assert sum(service.store.counts().values()) == 2


class Receiver(BaseHTTPRequestHandler):
    got: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.got.append((self.headers[SIGNATURE_HEADER], body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_the_completion_webhook_is_signed_with_the_shared_secret(comfy, tmp_path):
    receiver = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    secret = "s" * 40
    env = {**ENV, "PISTACHIO_WEBHOOK_SECRET": secret}
    try:
        with api_for(tmp_path, [comfy.url], serve={"webhook_hosts": ["127.0.0.1"]}, environ=env) as (url, _):
            hook = f"http://127.0.0.1:{receiver.server_address[1]}/done"
            job = wait_done(url, submit(url, webhook_url=hook).json()["id"])
            deadline = time.monotonic() + 10
            while not Receiver.got and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        receiver.shutdown()
    signature, body = Receiver.got[0]
    assert signature == "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert json.loads(body) == {"id": job["id"], "state": "done", "error": None, "images": 1}


def test_readyz_is_503_until_a_comfyui_server_answers(comfy, tmp_path):
    with api_for(tmp_path, [dead_url()], serve={"ready_cache_seconds": 0}) as (url, _):
        assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
        ready = requests.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["ready"] is False
    with api_for(tmp_path / "up", [comfy.url]) as (url, _):
        assert requests.get(f"{url}/readyz", timeout=10).json()["ready"] is True
        assert "/v1/generations" in requests.get(f"{url}/openapi.json", timeout=10).json()["paths"]


def test_a_comfyui_server_killed_mid_job_hands_its_jobs_to_the_other(tmp_path):
    with ComfyTestServer(behaviour=Behaviour(delay=0.05)) as live:
        doomed = ComfyTestServer(behaviour=Behaviour(delay=1.5)).start()
        with api_for(tmp_path, [doomed.url, live.url], jobs_per_server=1) as (url, service):
            ids = [submit(url, seed=s).json()["id"] for s in range(4)]
            deadline = time.monotonic() + 10
            while not any((j := service.store.get(i)) and j.server == doomed.url and j.state == "submitted" for i in ids):
                assert time.monotonic() < deadline, "no job reached the doomed server"
                time.sleep(0.02)
            doomed.stop()
            jobs = [wait_done(url, i) for i in ids]
            stored = [service.store.get(i) for i in ids]
        assert [j["state"] for j in jobs] == ["done"] * 4
        moved = [j for j in stored if j.attempts > 1]
        assert moved and all(j.server == live.url for j in moved)


def test_startup_refuses_missing_weak_or_exposed_keys_naming_them_not_showing_them(comfy, tmp_path):
    profile = write_profile(tmp_path, [comfy.url])
    with pytest.raises(ParamsError, match="PISTACHIO_API_KEYS"):
        load_service(profile, environ={})
    with pytest.raises(ParamsError, match="'short' is shorter") as err:
        load_service(profile, environ={"PISTACHIO_API_KEYS": "short:abc123"})
    assert "abc123" not in str(err.value)
    keys = tmp_path / "keys"
    keys.write_text(f"chatbot {KEY_A}\n")
    keys.chmod(0o644)
    with pytest.raises(ParamsError, match="readable by others"):
        load_service(write_profile(tmp_path, [comfy.url], serve={"keys_file": str(keys)}), environ={})
    keys.chmod(0o600)
    service = load_service(write_profile(tmp_path, [comfy.url], serve={"keys_file": str(keys)}), environ={})
    assert service.keys.identify(KEY_A) == "chatbot" and service.keys.identify(KEY_B) is None
    service.close()
