"""Everything `pistachio serve` needs, from a params profile: 06's batch params, the serve settings, keys, store."""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..batch.jobs import Job
from ..batch.params import BatchParams
from ..errors import ParamsError
from ..params import describe_validation_error
from .auth import KeyRing, RateLimiter, load_keys
from .dispatch import Dispatcher
from .params import ServeParams
from .store import JobStore
from .webhook import SECRET_ENV


@dataclass
class Service:
    batch: BatchParams
    settings: ServeParams
    keys: KeyRing
    store: JobStore
    dispatcher: Dispatcher
    webhook_secret: str | None
    limiter: RateLimiter = field(init=False)
    stack: ExitStack = field(default_factory=ExitStack)  # the demo profile's services, stopped with the API

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.settings.rate_per_minute, self.settings.burst)

    @property
    def workflows(self) -> list[str]:
        return self.settings.workflows or [self.batch.workflow]

    @property
    def images_dir(self) -> Path:
        return self.dispatcher.images_dir

    def sample_job(self) -> Job:
        side = max(self.settings.min_side, min(1024, self.settings.max_side))
        return Job("sample", "a photo", self.batch.negative, 0, self.batch.lora_strength, side, side, "startup check")

    def check(self) -> list[str]:
        """Every allowed workflow filled and checked against each reachable server; returns the servers down."""
        return self.dispatcher.check(self.sample_job())

    def start(self) -> list[str]:
        """Start dispatching; returns the ComfyUI servers that were down (they are retried as jobs come)."""
        return self.dispatcher.start(self.sample_job())

    def close(self) -> None:
        self.dispatcher.stop()
        self.store.close()
        self.stack.close()


def serve_settings(values: dict[str, Any], where: str) -> ServeParams:
    try:
        return ServeParams.model_validate(values)
    except ValidationError as err:
        raise ParamsError(describe_validation_error(err, where), fix="edit the named field of the serve: section") from None


def batch_params(params_file: str | Path, sets: list[str] | None, stack: ExitStack) -> tuple[BatchParams, Any]:
    """06_batch_generation's params from the profile, starting the profile's services (the demo's ComfyUI) first."""
    from ..runner import notebook_params

    batch, profile = notebook_params(params_file, sets, "06_batch_generation", stack, lock=False)  # serving holds no run's lock
    if "comfyui" not in batch.backends:
        raise ParamsError(f"{profile.path} [06_batch_generation]: backends has no comfyui; the API runs jobs on ComfyUI servers",
                          fix="add comfyui to backends and list its servers")
    return batch, profile


def load_service(params_file: str | Path, sets: list[str] | None = None, environ: dict[str, str] | None = None,
                 **overrides: Any) -> Service:
    """Validate everything (profile, serve section, keys, webhook secret) before anything listens."""
    env = os.environ if environ is None else environ
    stack = ExitStack()
    try:
        batch, profile = batch_params(params_file, sets, stack)
        settings = serve_settings({**profile.serve, **overrides}, f"{profile.path} [serve]")
        keys = load_keys(settings.keys_file, env)
        secret = env.get(SECRET_ENV) or None
        if settings.webhook_hosts and not secret:
            raise ParamsError(f"{profile.path} [serve]: webhook_hosts is set but {SECRET_ENV} is not",
                              fix=f"export {SECRET_ENV}=<a long random string shared with the receiver>")
        root = batch.ws.sub("serve")
        store = JobStore(settings.database or root / "jobs.sqlite3")
        dispatcher = Dispatcher(batch, store, settings.workflows or [batch.workflow], root / "images")
    except BaseException:
        stack.close()
        raise
    return Service(batch, settings, keys, store, dispatcher, secret, stack=stack)
