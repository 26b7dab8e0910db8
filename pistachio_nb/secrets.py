"""Secrets come from environment variables only (cron gets them from the owner-only env file, `envfile.py`);
anything that looks like one is scrubbed from outputs.

`scrub` is the one scrubber for everything the project prints or writes that could hold a secret: it
replaces secret environment values (also in their JSON-, HTML-, repr- and URL-escaped forms) and
credentials carried by URLs (`user:pass@`, `?token=`, `api_key=`, `key=`, signatures) with `***`.
"""

from __future__ import annotations

import html
import json
import os
import re
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

from .errors import ParamsError

_SECRET_NAME = re.compile(r"(TOKEN|API_KEY|APIKEY|SECRET|PASSWORD|PASSWD)", re.IGNORECASE)
# whole name parts only: `hf_token` and `api_key` are secrets, `max_new_tokens` and `tokenizer_model` are not
_SECRET_KEY = re.compile(r"(^|_)(token|api_?key|secret|password|passwd|auth)(_|$)", re.IGNORECASE)
MIN_SECRET_LEN = 6  # shorter values would scrub ordinary words
MASK = "***"
# query parameters that carry a credential (Civitai `token`, Google `key`, presigned S3/GCS signatures)
CREDENTIAL_PARAMS = ("token", "access_token", "auth_token", "id_token", "refresh_token", "api_key", "apikey", "key",
                     "auth", "password", "passwd", "pwd", "secret", "client_secret", "sig", "signature",
                     "x-amz-signature", "x-amz-security-token", "x-amz-credential", "x-goog-signature",
                     "x-goog-credential")
# `;` too: in HTML the separator is `&amp;`
_QUERY_CRED = re.compile(r"(?i)([?&;](?:%s)=)[^&#\s\"'<>]+" % "|".join(re.escape(k) for k in CREDENTIAL_PARAMS))
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@\"'<>?#]+@")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def get_secret(name: str) -> str | None:
    """Read a secret (e.g. HF_TOKEN) from the environment; None when unset."""
    value = os.environ.get(name, "").strip()
    return value or None


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of every environment variable whose name looks like a secret, longest first."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LEN}
    return sorted(values, key=len, reverse=True)


def _escaped_forms(value: str) -> set[str]:
    """The ways a value shows up once written: raw, JSON string, HTML text/attribute, Python repr, URL-encoded."""
    js = json.dumps(value)[1:-1]
    forms = {value, js, json.dumps(value, ensure_ascii=False)[1:-1], repr(value)[1:-1], quote(value, safe=""),
             quote_plus(value, safe="")}
    for text in (value, js):  # html.escape writes &#x27;, markupsafe (nbconvert's Jinja) &#39; and &#34;
        forms |= {html.escape(text), html.escape(text, quote=False),
                  text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#39;").replace('"', "&#34;")}
    return forms


def secret_forms(environ: dict[str, str] | None = None) -> list[str]:
    """Every escaped form of every secret value, longest first (so a longer form is replaced whole)."""
    forms = {f for v in secret_values(environ) for f in _escaped_forms(v) if len(f) >= MIN_SECRET_LEN}
    return sorted(forms, key=len, reverse=True)


def scrub_urls(text: str) -> str:
    """Mask credentials carried by URLs: userinfo (`https://user:pass@host`) and credential query parameters."""
    if "://" in text:
        text = _USERINFO.sub(lambda m: m.group(1) + MASK + "@", text)
    if "=" in text:
        text = _QUERY_CRED.sub(lambda m: m.group(1) + MASK, text)
    return text


def _scrub(text: str, forms: list[str]) -> str:
    for form in forms:
        if form in text:
            text = text.replace(form, MASK)
    text = scrub_urls(text)
    if "\x1b[" in text:  # colour codes can split a secret (IPython tracebacks): judge the plain text
        plain = _ANSI.sub("", text)
        clean = _scrub(plain, forms)
        if clean != plain:
            return clean
    return text


def scrub(text: str, environ: dict[str, str] | None = None) -> str:
    """Replace every secret value found in the environment (in any escaped form) and URL credentials with `***`."""
    return _scrub(str(text), secret_forms(environ))


def scrub_data(data: Any, environ: dict[str, str] | None = None) -> Any:
    """Scrub every string inside nested dicts/lists in place (a parsed notebook, a record); returns it.

    Dict keys are kept; list items and dict values are replaced by their scrubbed strings.
    """
    forms = secret_forms(environ)

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            return _scrub(node, forms)
        if isinstance(node, dict):
            for key, value in node.items():
                node[key] = walk(value)
        elif isinstance(node, list):
            node[:] = [walk(item) for item in node]
        return node

    return walk(data)


def scrub_table(table: Any, environ: dict[str, str] | None = None) -> Any:
    """A copy of a pandas DataFrame with every string cell scrubbed (tables we print or write as CSV)."""
    forms = secret_forms(environ)
    return table.map(lambda v: _scrub(v, forms) if isinstance(v, str) else v)


def url_credentials(url: str) -> list[str]:
    """The credential parts a URL carries (`userinfo`, query parameter names like `token`); empty when none."""
    parts = urlsplit(url)
    found = ["userinfo"] if "@" in parts.netloc else []
    found += [k for k, _ in parse_qsl(parts.query, keep_blank_values=True) if k.lower() in CREDENTIAL_PARAMS]
    return found


def refuse_secret_keys(values: dict, where: str) -> None:
    """Params must not carry secrets: a key named like a token/key/password is refused, at any depth."""
    for key, value in values.items():
        if isinstance(value, dict):
            refuse_secret_keys(value, f"{where} {str(key)[:80]}")
        if _SECRET_KEY.search(str(key)):
            raise ParamsError(
                f"{where}: parameter {str(key)[:80]!r} looks like a secret; secrets never go in params files",
                fix=f"remove {str(key)[:80]!r} and export it as an environment variable (e.g. HF_TOKEN) instead",
            )
