"""Settings of `pistachio serve` (the profile's `serve:` section); which servers and workflow come from 06's section.

The API makes the same images as 06_batch_generation (servers, checkpoint, LoRA, steps, cfg, retries), so it
reads that notebook's validated params; this model adds only what an HTTP service needs. Defaults live here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

SDXL_GRID = 64  # SDXL's training buckets have sides in multiples of 64 (SDXL paper, appendix I)


class ServeParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    host: str = Field("127.0.0.1", description="address to bind; 127.0.0.1 keeps the API on this machine (put a proxy in front)")
    port: int = Field(8000, ge=1, le=65535, description="TCP port")
    workflows: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list, description="workflow names clients may ask for; empty = only 06's workflow")
    keys_file: Path | None = Field(None, description="API keys file (owner-only, 0600): one `name key` per line; else PISTACHIO_API_KEYS")
    database: Path | None = Field(None, description="SQLite job store; default <workspace>/serve/jobs.sqlite3")
    rate_per_minute: float = Field(30, gt=0, le=100000, description="submissions per key per minute (token bucket)")
    burst: int = Field(10, ge=1, le=100000, description="submissions a key may make at once before the rate applies")
    daily_quota: int = Field(500, ge=1, le=10**7, description="submissions per key per UTC day")
    max_prompt_chars: int = Field(1000, ge=1, le=20000, description="longest prompt or negative accepted")
    min_side: int = Field(512, ge=SDXL_GRID, le=8192, multiple_of=SDXL_GRID, description="smallest width/height accepted")
    max_side: int = Field(2048, ge=SDXL_GRID, le=8192, multiple_of=SDXL_GRID, description="largest width/height accepted")
    max_pixels: int = Field(1024 * 1024 * 2, ge=SDXL_GRID**2, le=8192**2, description="largest width x height accepted")
    max_lora_strength: float = Field(2.0, ge=0, le=5, description="largest |lora_strength| accepted")
    webhook_hosts: list[str] = Field(default_factory=list, description="hosts a completion webhook may go to; empty = webhooks off")
    ready_cache_seconds: float = Field(2.0, ge=0, le=600, description="how long /readyz reuses its last ComfyUI health answer")

    @model_validator(mode="after")
    def _sides(self) -> ServeParams:
        if self.min_side > self.max_side:
            raise ValueError(f"min_side {self.min_side} is larger than max_side {self.max_side}")
        return self
