"""Idempotent model downloads from a YAML manifest: skip verified files, resume partial ones, rename
into place only after the sha256 matches, and report a present / downloaded / failed table.

Manifest (`params/models-pod.yaml`): `models:` list of entries
`{name, source: {hf_repo, filename[, revision]} | {url}, dest: <folder under comfy models>, sha256, size}`
(single files into ComfyUI's folders), and `hub:` list of whole hub repos for the diffusers /
transformers stages (`pistachio_nb.hub_models`: pinned commit, patterns, variant, into the HF cache).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import requests
from tqdm.auto import tqdm

from .errors import InputDataError, PistachioError
from .files import read_yaml, write_text
from .paths import resolve
from .secrets import get_secret, scrub, url_credentials

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20  # hashing reads
HF_DEFAULT_ENDPOINT = "https://huggingface.co"  # read per call: huggingface_hub reads HF_ENDPOINT once at import
STREAM_CHUNK = 1 << 20  # a dropped connection loses at most one of these; 64 KiB was 3x slower
CIVITAI_HOSTS = ("civitai.com", "civitai.green")  # and their subdomains: CIVITAI_API_KEY goes to these only


class ChecksumMismatchError(PistachioError, ValueError):
    """A file's sha256 differs from the manifest: it is refused, never renamed into place."""


class DownloadError(PistachioError, ConnectionError):
    """The server answered with an error status or the transfer could not complete."""


@dataclass(frozen=True)
class ModelFile:
    """One manifest entry, resolved: where it comes from and the exact file it must become."""

    name: str
    url: str
    dest: Path
    sha256: str
    size: int | None
    hub: bool  # a Hugging Face file: send the HF_TOKEN auth header

    @property
    def part(self) -> Path:
        """The partial download beside the destination (hidden, so ComfyUI never lists it)."""
        return self.dest.with_name(f".{self.dest.name}.part")

    @property
    def stamp(self) -> Path:
        """Records `sha256 size mtime_ns` of a verified file, so reruns skip re-hashing gigabytes."""
        return self.dest.with_name(f".{self.dest.name}.sha256")


def _entry(raw: Any, index: int, where: str, models_dir: Path) -> ModelFile:
    """Validate one manifest entry, naming it and the bad key on error."""
    label = f"{where}: models[{index}]" + (f" ({raw.get('name')})" if isinstance(raw, dict) and raw.get("name") else "")
    if not isinstance(raw, dict):
        raise InputDataError(f"{label}: expected a mapping, got {type(raw).__name__}")
    unknown = set(raw) - {"name", "source", "dest", "sha256", "size", "filename"}
    if unknown:
        raise InputDataError(f"{label}: unknown key(s) {sorted(unknown)}", fix="keys: name, source, dest, sha256, size, filename")
    source = raw.get("source") or {}
    if not raw.get("name") or not raw.get("dest") or not isinstance(source, dict):
        raise InputDataError(f"{label}: name, dest and source are required", fix="see params/models-pod.yaml")
    sha = str(raw.get("sha256", "")).lower()
    if not _SHA256.match(sha):
        raise InputDataError(f"{label}: sha256 must be 64 hex characters, got {raw.get('sha256')!r}",
                             fix="copy the SHA256 from the file's page (Hugging Face shows it under the LFS details)")
    size = raw.get("size")
    if size is not None and (not isinstance(size, int) or size <= 0):
        raise InputDataError(f"{label}: size must be a positive number of bytes, got {size!r}")
    if Path(raw["dest"]).is_absolute() or ".." in Path(raw["dest"]).parts:
        raise InputDataError(f"{label}: dest must be a folder below the ComfyUI models folder, got {raw['dest']!r}")
    if "hf_repo" in source and "filename" in source:
        from huggingface_hub import hf_hub_url

        url = hf_hub_url(source["hf_repo"], source["filename"], revision=source.get("revision"),
                         endpoint=os.environ.get("HF_ENDPOINT") or HF_DEFAULT_ENDPOINT)
        filename, key, hub = raw.get("filename") or Path(str(source["filename"])).name, "source.filename", True
    elif "url" in source:
        url, hub = str(source["url"]), False
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise InputDataError(f"{label}: source url must be an http(s):// address, got {scrub(url)!r}",
                                 fix="params/models-demo.yaml is a template the demo profile fills in; use it through the demo")
        _refuse_url_credentials(url, label)
        filename, key = raw.get("filename") or Path(urlsplit(url).path).name, "source.url"
    else:
        raise InputDataError(f"{label}: source needs either hf_repo + filename or url, got {sorted(source)}")
    key = "filename" if raw.get("filename") else key
    dest = models_dir / raw["dest"] / _plain_filename(filename, label, key)
    if not _is_within(dest, models_dir):
        raise InputDataError(f"{label}: dest {raw['dest']!r} + {key} resolve to {dest.resolve()}, outside the models "
                             f"folder {models_dir}", fix="remove the symlink that leads out, or point dest at a real folder")
    return ModelFile(str(raw["name"]), url, dest, sha, size, hub)


def _plain_filename(name: Any, label: str, key: str) -> str:
    """One plain file name (no folders, `..`, absolute path, hidden name or control character), else refuse naming `key`."""
    text = str(name) if isinstance(name, str | int) else ""
    bad = (not text or text in (".", "..") or "/" in text or "\\" in text or text.startswith(".")
           or any(ord(c) < 32 or ord(c) == 127 for c in text) or len(text.encode()) > 255)
    if bad:
        what = "the file name taken from it" if key != "filename" else "filename"
        raise InputDataError(f"{label}: {key}: {what} must be one plain file name (no folder, '..', leading '.' or "
                             f"absolute path), got {scrub(str(name))[:200]!r}",
                             fix="set filename: to a bare name like model.safetensors; put folders in dest")
    return text


def _is_within(path: Path, folder: Path) -> bool:
    """True when `path`, symlinks resolved, stays inside `folder` (resolved too): tarfile's `data` filter rule."""
    real, root = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([real, root]) == root


def _refuse_url_credentials(url: str, label: str) -> None:
    """A manifest URL must not carry a token: tokens come from the environment at request time only."""
    found = url_credentials(url)
    if found:
        env = "CIVITAI_API_KEY" if _is_civitai(url) else "HF_TOKEN" if "huggingface" in (urlsplit(url).hostname or "") else None
        raise InputDataError(f"{label}: source url carries a credential ({', '.join(found)}): {scrub(url)}",
                             fix=(f"remove it from the URL and export {env} instead; it is added to the request then"
                                  if env else "remove it from the URL; manifests are files and never hold secrets"))


def _is_civitai(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return any(host == h or host.endswith("." + h) for h in CIVITAI_HOSTS)


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest's `models:` and `hub:` lists (either may be absent, not both) and its optional `hub_endpoint`."""
    data = read_yaml(path, InputDataError, "models manifest", "set models_manifest to e.g. params/models-pod.yaml") or {}
    lists = {key: data.get(key) or [] for key in ("models", "hub")} if isinstance(data, dict) else {}
    if not lists or not all(isinstance(v, list) for v in lists.values()) or not any(lists.values()):
        raise InputDataError(f"{path}: expected a top-level `models:` list (files) and/or `hub:` list (hub repos)")
    unknown = set(data) - {"models", "hub", "hub_endpoint"}
    if unknown:
        raise InputDataError(f"{path}: unknown top-level key(s) {sorted(unknown)}", fix="keys: models, hub, hub_endpoint")
    return {**lists, "hub_endpoint": data.get("hub_endpoint")}


def load_manifest(path: str | Path, models_dir: str | Path) -> list[ModelFile]:
    """Read and validate a models manifest's files; every entry is checked before any download starts."""
    path = Path(path)
    entries = [_entry(raw, i, str(path), Path(models_dir)) for i, raw in enumerate(read_manifest(path)["models"])]
    dupes = {e.dest for e in entries if sum(x.dest == e.dest for x in entries) > 1}
    if dupes:
        raise InputDataError(f"{path}: several entries write the same file: {sorted(map(str, dupes))}")
    return entries


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _stamp_text(entry: ModelFile) -> str:
    st = entry.dest.stat()
    return f"{entry.sha256} {st.st_size} {st.st_mtime_ns}\n"


def verify_present(entry: ModelFile) -> bool:
    """True if the destination exists with the manifest's sha256 (via the stamp when the file is unchanged).

    A present file with another sha256 raises: it is the user's file and is never overwritten.
    """
    if not entry.dest.is_file():
        return False
    if entry.stamp.is_file() and entry.stamp.read_text(encoding="utf-8") == _stamp_text(entry):
        return True
    found = sha256_file(entry.dest)
    if found != entry.sha256:
        raise ChecksumMismatchError(
            f"{entry.dest} exists but its sha256 is {found}, the manifest expects {entry.sha256}",
            fix="refusing to overwrite it: move the file away, or correct sha256 in the manifest if the file is right",
        )
    write_text(entry.stamp, _stamp_text(entry))
    return True


def _request(entry: ModelFile, offset: int, timeout: float) -> requests.Response:
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    token = get_secret("HF_TOKEN") if entry.hub else get_secret("CIVITAI_API_KEY") if _is_civitai(entry.url) else None
    if token:  # environment only; requests drops it on redirects to other hosts (the LFS / Civitai CDN).
        # (not huggingface_hub's build_hf_headers: 2.4 fetches an agent registry from the Hub in it)
        headers["Authorization"] = f"Bearer {token}"
    return requests.get(entry.url, headers=headers, stream=True, timeout=timeout)


def _fetch_part(entry: ModelFile, timeout: float) -> None:
    """Bring the .part file to full length, resuming from its current size when the server allows.

    Never writes past the manifest `size` (nor past the Content-Length, which urllib3 already enforces): a body
    that is longer is another file, so the transfer stops at once and the part is dropped (like curl --max-filesize).
    """
    have = entry.part.stat().st_size if entry.part.exists() else 0
    if entry.size is not None and have > entry.size:
        have = 0  # longer than the real file: cannot be a prefix of it
    with _request(entry, have, timeout) as resp:
        if resp.status_code == 416 and have:
            return  # nothing left to send: the part is already complete
        if resp.status_code not in (200, 206):
            raise DownloadError(f"{entry.name}: HTTP {resp.status_code} from {entry.url}",
                                fix="check the URL / repo id in the manifest (and HF_TOKEN for gated repos)")
        if resp.status_code == 206 and not resp.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            entry.part.unlink()
            raise DownloadError(f"{entry.name}: server sent another byte range than asked ({resp.headers.get('Content-Range')})",
                                fix="rerun: the download starts over")
        have = have if resp.status_code == 206 else 0  # 200: the server ignored Range, start over
        length = resp.headers.get("Content-Length", "")
        length = int(length) if length.isdigit() else None
        left = None if entry.size is None else entry.size - have  # bytes this response may bring at most
        if left is not None and length is not None and length > left:
            raise DownloadError(f"{entry.name}: {entry.url} announces {length} bytes from byte {have}, the manifest "
                                f"size is {entry.size}; not downloaded", fix="check source and size in the manifest")
        total = have + (length or 0) or entry.size
        entry.part.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with entry.part.open("ab" if have else "wb") as fh, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, desc=entry.name, leave=False
        ) as bar:
            for block in resp.iter_content(STREAM_CHUNK):
                written += len(block)
                if left is not None and written > left:
                    break
                fh.write(block)
                bar.update(len(block))
        if left is not None and written > left:
            entry.part.unlink()
            raise DownloadError(f"{entry.name}: {entry.url} sent more than the manifest size of {entry.size} bytes; "
                                f"stopped at {have + written}", fix="check source and size in the manifest")


def download(entry: ModelFile, timeout: float = 30.0, attempts: int = 3, retry_wait: float = 2.0) -> None:
    """Download to `.part` (resuming), check size and sha256, then rename into place; a mismatch is refused."""
    for attempt in range(1, attempts + 1):
        try:
            _fetch_part(entry, timeout)
            break
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as err:
            if attempt == attempts:
                raise DownloadError(f"{entry.name}: transfer from {entry.url} failed {attempts} times: {err}",
                                    fix="rerun: the partial file is kept and the download resumes") from None
            time.sleep(min(retry_wait * 2 ** (attempt - 1), 60.0))  # backoff, then resume
        except PistachioError:  # ours (DownloadError is a ConnectionError, hence an OSError: not the disk)
            raise
        except requests.RequestException as err:  # not retryable: e.g. a redirect to ftp://, an invalid URL
            raise DownloadError(f"{entry.name}: cannot download {entry.url}: {type(err).__name__}: {err}",
                                fix="the source must be an http(s) address (also after redirects); check the manifest") from None
        except OSError as err:  # our side: a full disk (ENOSPC), no permission on the models folder
            raise DownloadError(f"{entry.name}: cannot write {entry.part}: {err}",
                                fix="free disk space / fix permissions there and rerun; the partial file resumes") from None
    size = entry.part.stat().st_size
    if entry.size is not None and size != entry.size:
        raise DownloadError(f"{entry.name}: got {size} bytes, the manifest says {entry.size}",
                            fix="rerun to resume; if it repeats, check size in the manifest")
    found = sha256_file(entry.part)
    if found != entry.sha256:
        entry.part.unlink()  # our own partial file; a bad download must not be resumed from
        raise ChecksumMismatchError(
            f"{entry.name}: downloaded file has sha256 {found}, the manifest expects {entry.sha256} ({entry.url})",
            fix="the source changed or the manifest is wrong: check the sha256 on the source page; nothing was installed",
        )
    os.replace(entry.part, entry.dest)
    write_text(entry.stamp, _stamp_text(entry))


def ensure_models(manifest: str | Path | None, models_dir: str | Path, timeout: float = 30.0, attempts: int = 3,
                  retry_wait: float = 2.0) -> pd.DataFrame:
    """Make every manifest file and hub snapshot present and verified; one row each: present / downloaded / failed."""
    from .hub_models import ensure_hub_rows, load_hub_manifest

    models_dir = resolve(models_dir)
    entries = load_manifest(resolve(manifest), models_dir) if manifest else []
    hub = load_hub_manifest(resolve(manifest)) if manifest else []  # both lists checked before any download
    rows = []
    for entry in tqdm(entries, desc="models", unit="file", disable=len(entries) < 2):
        start, status, detail = time.perf_counter(), "present", ""
        try:
            if not verify_present(entry):
                download(entry, timeout, attempts, retry_wait)
                status = "downloaded"
        except PistachioError as err:
            status, detail = "failed", str(err)
        except OSError as err:  # e.g. reading a present file fails: this row fails, the others still run
            status, detail = "failed", f"{entry.name}: {err}"
        size = entry.dest.stat().st_size if entry.dest.is_file() else None
        rows.append(table_row(entry.name, str(entry.dest.relative_to(models_dir)), status, size, start, detail))
    rows += ensure_hub_rows(hub, timeout)
    return pd.DataFrame(rows, columns=["name", "file", "status", "MiB", "seconds", "detail"])


def table_row(name: str, file: str, status: str, size: int | None, start: float, detail: str) -> dict:
    """One row of the models table (`start` is the perf_counter when its work began)."""
    return {"name": name, "file": file, "status": status, "MiB": None if size is None else round(size / 2**20, 2),
            "seconds": round(time.perf_counter() - start, 2), "detail": detail}

