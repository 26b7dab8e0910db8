"""The HTTP API: submit a generation (202 + job id), poll it, fetch its images; health and readiness; OpenAPI docs.

Every /v1 route needs `Authorization: Bearer <key>`; a job is visible only to the key that made it (another
key gets 404, as for an id that does not exist). CORS is off: the chatbot's backend calls this, not a browser.
"""

from __future__ import annotations

import secrets as pyrandom
import threading
import time
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ..comfy.client import ComfyClient
from ..comfy.errors import ComfyError
from ..secrets import scrub
from .params import SDXL_GRID
from .service import Service
from .store import IdempotencyConflict, StoredJob
from .webhook import allowed, deliver

MAX_SEED = 2**63 - 1


class GenerationRequest(BaseModel):
    """What a client may ask for; no file paths, no free-form graph: the server's workflows and models only."""

    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(min_length=1, description="what to draw; include the character's trigger word")
    negative: str | None = Field(None, description="negative prompt (default: the server's)")
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="default: a random seed, returned in the job")
    width: int | None = Field(None, description=f"pixels, a multiple of {SDXL_GRID} (default: the server's)")
    height: int | None = Field(None, description=f"pixels, a multiple of {SDXL_GRID} (default: the server's)")
    lora_strength: float | None = Field(None, description="character LoRA strength (default: the server's)")
    workflow: str | None = Field(None, description="one of the server's allowed workflows (default: the first)")
    webhook_url: str | None = Field(None, description="POSTed a signed JSON when the job ends (hosts allowed by the server)")


def _bad(field: str, msg: str) -> dict[str, Any]:
    return {"loc": ["body", field], "msg": msg, "type": "value_error"}


def check_request(req: GenerationRequest, service: Service) -> dict[str, Any]:
    """The request against the server's limits, with defaults filled in; 422 naming every bad field."""
    s, b = service.settings, service.batch
    job = {"prompt": req.prompt, "negative": b.negative if req.negative is None else req.negative,
           "seed": pyrandom.randbelow(2**32) if req.seed is None else req.seed,
           "width": req.width or b.width, "height": req.height or b.height,
           "lora_strength": b.lora_strength if req.lora_strength is None else req.lora_strength,
           "workflow": req.workflow or service.workflows[0], "webhook_url": req.webhook_url}
    errors = [_bad(f, f"longer than {s.max_prompt_chars} characters") for f in ("prompt", "negative")
              if len(job[f]) > s.max_prompt_chars]
    for side in ("width", "height"):
        if job[side] % SDXL_GRID or not s.min_side <= job[side] <= s.max_side:
            errors.append(_bad(side, f"must be a multiple of {SDXL_GRID} from {s.min_side} to {s.max_side}, got {job[side]}"))
    if job["width"] * job["height"] > s.max_pixels:
        errors.append(_bad("width", f"width x height {job['width'] * job['height']} exceeds {s.max_pixels} pixels"))
    if abs(job["lora_strength"]) > s.max_lora_strength:
        errors.append(_bad("lora_strength", f"must be within +-{s.max_lora_strength}"))
    if job["workflow"] not in service.workflows:
        errors.append(_bad("workflow", f"not an allowed workflow; allowed: {', '.join(service.workflows)}"))
    if job["webhook_url"] is not None:
        why = allowed(job["webhook_url"], s.webhook_hosts) if s.webhook_hosts else "webhooks are off on this server"
        if why:
            errors.append(_bad("webhook_url", why))
    if errors:
        raise RequestValidationError(errors)
    return job


def view(job: StoredJob, request: Request) -> dict[str, Any]:
    """A job as its owner sees it (no key names, no server internals beyond the server's URL)."""
    r, base = job.request, str(request.base_url)
    seconds = round(job.finished - job.created, 3) if job.finished else None
    return {"id": job.id, "state": job.public_state, "created": _iso(job.created), "started": _iso(job.started),
            "finished": _iso(job.finished), "seconds": seconds, "attempts": job.attempts,
            "error": scrub(job.error) if job.error else None,
            "images": [f"{base}v1/generations/{job.id}/images/{n}" for n in range(len(job.files))],
            "request": {k: r[k] for k in ("prompt", "negative", "seed", "width", "height", "lora_strength", "workflow")}}


def _iso(t: float | None) -> str | None:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds") if t else None


class Readiness:
    """Whether any ComfyUI server answers /system_stats, cached for a moment (probes cost a request each)."""

    def __init__(self, servers: list[str], cache_s: float) -> None:
        self.servers, self.cache_s = servers, cache_s
        self._at, self._answer, self._lock = 0.0, {}, threading.Lock()

    def check(self) -> dict[str, bool]:
        with self._lock:
            if time.monotonic() - self._at >= self.cache_s or not self._answer:
                self._answer = {url: self._probe(url) for url in self.servers}
                self._at = time.monotonic()
            return dict(self._answer)

    @staticmethod
    def _probe(url: str) -> bool:
        with ComfyClient(url, timeout=(1.0, 2.0), use_websocket=False) as client:
            try:
                client.system_stats()
            except ComfyError:
                return False
        return True


def create_app(service: Service) -> FastAPI:
    """The FastAPI app over a loaded service; dispatching starts and stops with the app."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.dispatcher.on_final = notify
        service.start()
        yield
        service.close()

    app = FastAPI(title="Pistachio generation API", version="1", lifespan=lifespan,
                  description="Images of the character through ComfyUI, for the chatbot. Bearer-key auth on /v1.")
    readiness = Readiness(service.batch.servers, service.settings.ready_cache_seconds)

    def notify(job_id: str) -> None:
        job = service.store.get(job_id)
        if job and job.request.get("webhook_url") and service.webhook_secret:
            deliver(job.request["webhook_url"], {"id": job.id, "state": job.public_state, "error": job.error,
                                                 "images": len(job.files)}, service.webhook_secret)

    async def client_key(authorization: str | None = Header(None)) -> str:  # async: no thread hop per request
        scheme, _, token = (authorization or "").partition(" ")
        name = service.keys.identify(token.strip()) if scheme.lower() == "bearer" else None
        if name is None:
            raise HTTPException(401, "missing or unknown API key", headers={"WWW-Authenticate": "Bearer"})
        return name

    def owned(job_id: str, key: str) -> StoredJob:
        job = service.store.get(job_id)
        if job is None or job.key_id != key:
            raise HTTPException(404, "no such generation")
        return job

    @app.post("/v1/generations", status_code=202)
    async def submit(body: GenerationRequest, request: Request, key: str = Depends(client_key),
               idempotency_key: str | None = Header(None, max_length=200)) -> JSONResponse:
        sent = body.model_dump(exclude_none=True)
        try:
            replay = service.store.by_idempotency(key, idempotency_key, sent) if idempotency_key else None
        except IdempotencyConflict:
            raise HTTPException(409, "this Idempotency-Key was used with a different request") from None
        if replay is not None:
            return JSONResponse(view(replay, request), 202, headers={"Idempotent-Replayed": "true"})
        job = check_request(body, service)
        wait = service.limiter.take(key)
        if wait:
            raise HTTPException(429, f"rate limit: {service.settings.rate_per_minute:g} per minute",
                                headers={"Retry-After": str(max(1, round(wait)))})
        day = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        if service.store.count_since(key, day) >= service.settings.daily_quota:
            raise HTTPException(429, f"daily quota of {service.settings.daily_quota} reached (resets 00:00 UTC)")
        try:
            stored, created = service.store.submit(key, job, idempotency_key, sent)
        except IdempotencyConflict:
            raise HTTPException(409, "this Idempotency-Key was used with a different request") from None
        headers = {"Location": f"/v1/generations/{stored.id}"} | ({} if created else {"Idempotent-Replayed": "true"})
        return JSONResponse(view(stored, request), 202, headers=headers)

    @app.get("/v1/generations/{job_id}")
    async def status(job_id: str, request: Request, key: str = Depends(client_key)) -> JSONResponse:  # a quick read
        return JSONResponse(view(owned(job_id, key), request))

    @app.get("/v1/generations/{job_id}/images/{n}", response_class=FileResponse)
    def image(job_id: str, n: int, key: str = Depends(client_key)) -> FileResponse:
        job = owned(job_id, key)
        if not 0 <= n < len(job.files):
            raise HTTPException(404, f"no image {n}: this generation has {len(job.files)}")
        return FileResponse(service.images_dir / job.files[n], media_type="image/png")

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        alive = service.dispatcher.alive
        return JSONResponse({"ok": alive, "dispatcher": alive}, 200 if alive else 503)

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        servers = readiness.check()
        ready = service.dispatcher.alive and any(servers.values())
        return JSONResponse({"ready": ready, "servers": servers, "jobs": service.store.counts()}, 200 if ready else 503)

    return app
