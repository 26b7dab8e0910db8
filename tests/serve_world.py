"""Helpers for the generation API tests: a profile around given ComfyUI servers, and the API live on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
import uvicorn
import yaml

from pistachio_nb.serve.api import create_app
from pistachio_nb.serve.service import Service, load_service

KEY_A = "a" * 8 + "-chatbot-key-0123456789abcdef"
KEY_B = "b" * 8 + "-second-key-0123456789abcdef"
ENV = {"PISTACHIO_API_KEYS": f"chatbot:{KEY_A},other:{KEY_B}"}


def write_profile(tmp: Path, servers: list[str], serve: dict[str, Any] | None = None, **batch: Any) -> Path:
    """A profile whose 06 section points at `servers`; the rest are the notebook's own defaults."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "prompts.csv").write_text("prompt\npstchio character\n")
    section = {"prompts_file": str(tmp / "prompts.csv"), "backends": ["comfyui"], "servers": servers, "lora": "none", "comfy_checkpoint": "tiny-sdxl.safetensors",
               "comfy_lora": "character.safetensors",
               "width": 64, "height": 64, "retries": 2, "backoff_seconds": 0.1, "job_timeout_seconds": 30,
               "request_timeout_seconds": 5, **batch}
    profile = {"common": {"workspace": str(tmp / "ws")}, "06_batch_generation": section,
               "serve": {"min_side": 64, "max_side": 256, **(serve or {})}}
    path = tmp / "profile.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path


@contextmanager
def live_api(service: Service) -> Iterator[str]:
    """The app under uvicorn on a free port of 127.0.0.1 in a thread; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(create_app(service), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not (server.started and server.servers) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the API did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@contextmanager
def api_for(tmp: Path, servers: list[str], serve: dict[str, Any] | None = None, environ: dict[str, str] | None = None,
            **batch: Any) -> Iterator[tuple[str, Service]]:
    service = load_service(write_profile(tmp, servers, serve, **batch), environ=environ or ENV)
    with live_api(service) as url:
        yield url, service


def auth(key: str = KEY_A) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def submit(url: str, key: str = KEY_A, **body: Any) -> requests.Response:
    return requests.post(f"{url}/v1/generations", json={"prompt": "pstchio character", **body}, headers=auth(key), timeout=10)


def wait_done(url: str, job_id: str, key: str = KEY_A, limit_s: float = 30) -> dict[str, Any]:
    """Poll a job until it is done or failed; fail the test if it is not by `limit_s`."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        job = requests.get(f"{url}/v1/generations/{job_id}", headers=auth(key), timeout=10).json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not finished after {limit_s}s: {job}")
