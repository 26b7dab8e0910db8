"""Secrets come from environment variables only; anything that looks like one is scrubbed from outputs."""

from __future__ import annotations

import os
import re

from .errors import ParamsError

_SECRET_NAME = re.compile(r"(TOKEN|API_KEY|APIKEY|SECRET|PASSWORD|PASSWD)", re.IGNORECASE)
# whole name parts only: `hf_token` and `api_key` are secrets, `max_new_tokens` and `tokenizer_model` are not
_SECRET_KEY = re.compile(r"(^|_)(token|api_?key|secret|password|passwd|auth)(_|$)", re.IGNORECASE)
MIN_SECRET_LEN = 6  # shorter values would scrub ordinary words


def get_secret(name: str) -> str | None:
    """Read a secret (e.g. HF_TOKEN) from the environment; None when unset."""
    value = os.environ.get(name, "").strip()
    return value or None


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of every environment variable whose name looks like a secret, longest first."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LEN}
    return sorted(values, key=len, reverse=True)


def scrub(text: str, environ: dict[str, str] | None = None) -> str:
    """Replace every secret value found in the environment with `***`."""
    for value in secret_values(environ):
        text = text.replace(value, "***")
    return text


def refuse_secret_keys(values: dict, where: str) -> None:
    """Params must not carry secrets: a key named like a token/key/password is refused."""
    for key in values:
        if _SECRET_KEY.search(str(key)):
            raise ParamsError(
                f"{where}: parameter {key!r} looks like a secret; secrets never go in params files",
                fix=f"remove {key!r} and export it as an environment variable (e.g. HF_TOKEN) instead",
            )
