"""API keys (from the environment or an owner-only file), kept only as SHA-256 digests; per-key rate limits.

A presented key is hashed and compared with every stored digest in constant time (`hmac.compare_digest`),
so neither the keys nor a timing side channel reveal which prefix matched.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ParamsError

KEYS_ENV = "PISTACHIO_API_KEYS"  # "name:key,name2:key2"
MIN_KEY_CHARS = 24  # e.g. `python -c "import secrets; print(secrets.token_urlsafe(32))"`
KEY_FIX = "make keys with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def _pairs_from_env(text: str) -> list[tuple[str, str]]:
    pairs = []
    for n, item in enumerate(i.strip() for i in text.split(",")):
        if item:
            name, sep, key = item.partition(":")
            if not sep:
                raise ParamsError(f"{KEYS_ENV}: item {n + 1} is not name:key", fix=f"{KEYS_ENV}=chatbot:<key>,other:<key>")
            pairs.append((name.strip(), key.strip()))
    return pairs


def _pairs_from_file(path: Path) -> list[tuple[str, str]]:
    if not path.is_file():
        raise ParamsError(f"keys_file {path} does not exist", fix="create it with one `name key` per line, mode 0600")
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ParamsError(f"keys_file {path} is readable by others (mode {stat.filemode(mode)})", fix=f"chmod 600 {path}")
    pairs = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            parts = line.split()
            if len(parts) != 2:
                raise ParamsError(f"{path}:{n}: expected `name key`", fix="one key per line: a name, a space, the key")
            pairs.append((parts[0], parts[1]))
    return pairs


@dataclass(frozen=True)
class KeyRing:
    """name of each key, by the key's digest; the keys themselves are not kept."""

    digests: dict[bytes, str]

    def identify(self, presented: str | None) -> str | None:
        """The name of the key presented, or None; every digest is compared, in constant time each."""
        if not presented:
            return None
        got, found = _digest(presented), None
        for digest, name in self.digests.items():
            if hmac.compare_digest(got, digest):
                found = name
        return found


def load_keys(keys_file: Path | None, environ: dict[str, str] | None = None) -> KeyRing:
    """Keys from `keys_file` (0600) or else PISTACHIO_API_KEYS; refuse none, duplicates and short keys (by name only)."""
    env = os.environ if environ is None else environ
    pairs = _pairs_from_file(keys_file) if keys_file else _pairs_from_env(env.get(KEYS_ENV, ""))
    where = f"keys_file {keys_file}" if keys_file else KEYS_ENV
    if not pairs:
        raise ParamsError(f"no API keys: {where} is empty or unset", fix=f"export {KEYS_ENV}=chatbot:<key>; {KEY_FIX}")
    digests: dict[bytes, str] = {}
    for name, key in pairs:
        if len(key) < MIN_KEY_CHARS:
            raise ParamsError(f"{where}: the key named {name!r} is shorter than {MIN_KEY_CHARS} characters", fix=KEY_FIX)
        if name in digests.values() or _digest(key) in digests:
            raise ParamsError(f"{where}: the key named {name!r} repeats a name or a key", fix="one line per client")
        digests[_digest(key)] = name
    return KeyRing(digests)


@dataclass
class RateLimiter:
    """A token bucket per key: `burst` at once, refilled at `per_minute`."""

    per_minute: float
    burst: int
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, at)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key: str, now: float | None = None) -> float:
        """0 when the key may submit now (a token is used), else the seconds until it may."""
        now = time.monotonic() if now is None else now
        rate = self.per_minute / 60.0
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate
