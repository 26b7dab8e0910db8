"""Completion webhooks, signed: `X-Pistachio-Signature: sha256=<HMAC-SHA256 of the body with the shared secret>`.

The receiver recomputes the HMAC over the raw body and compares in constant time (the scheme GitHub and
Stripe use). Delivery is best effort: a few tries with a timeout each, never blocking the dispatcher.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import requests

SECRET_ENV = "PISTACHIO_WEBHOOK_SECRET"
SIGNATURE_HEADER = "X-Pistachio-Signature"
TRIES, TIMEOUT_S, BACKOFF_S = 3, (3.05, 5.0), 0.5


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def allowed(url: str, hosts: list[str]) -> str | None:
    """None when `url` may receive webhooks, else why not (the API answers 422 with it)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "webhook_url must be an http(s) URL"
    if parts.username or parts.password:
        return "webhook_url must not carry credentials"
    if parts.hostname not in hosts:
        return f"webhook_url host {parts.hostname!r} is not in the server's webhook_hosts"
    return None


def deliver(url: str, payload: dict[str, Any], secret: str) -> threading.Thread:
    """POST `payload` as JSON with its signature, in a background thread; a few tries, then give up."""
    body = json.dumps(payload, sort_keys=True).encode("utf-8")
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body)}

    def send() -> None:
        for attempt in range(TRIES):
            try:
                if requests.post(url, data=body, headers=headers, timeout=TIMEOUT_S, allow_redirects=False).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(BACKOFF_S * 2**attempt)

    thread = threading.Thread(target=send, name="pistachio-webhook", daemon=True)
    thread.start()
    return thread
