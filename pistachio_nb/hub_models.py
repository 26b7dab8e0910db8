"""Hub model snapshots from the models manifest's `hub:` list: pinned commit, file patterns, fp16 variant.

00_setup (`pistachio models`) downloads each into the Hugging Face cache (`HF_HOME`, on the persistent
volume) with huggingface_hub, checks every file against the hub's own hashes (the LFS sha256, the git
blob id for small files) and only then writes a `pistachio.json` lock beside the snapshot. Later stages
ask `local_snapshot(repo)` for that verified folder and load it as a local path: they never download.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .downloads import (CHUNK, HF_DEFAULT_ENDPOINT, ChecksumMismatchError, DownloadError, read_manifest, sha256_file,
                        table_row)
from .errors import InputDataError, PistachioError
from .files import read_json, write_json
from .secrets import get_secret, scrub

COMMIT = re.compile(r"^[0-9a-f]{40}$")
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
LOCK = "pistachio.json"  # beside snapshots/ in the repo's cache folder; written last, after verification
WEIGHTS = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".msgpack", ".onnx", ".h5")
KEYS = {"name", "repo", "revision", "allow_patterns", "ignore_patterns", "variant"}


@dataclass(frozen=True)
class HubModel:
    """One `hub:` manifest entry: a hub repo at a pinned commit, the files to take and the weights variant."""

    name: str
    repo: str
    revision: str
    allow_patterns: tuple[str, ...]
    ignore_patterns: tuple[str, ...]
    variant: str | None  # e.g. "fp16": take `*.fp16.safetensors` where a folder has them, and load with it
    endpoint: str | None = None  # the manifest's hub_endpoint (a mirror, the demo's local hub); else HF_ENDPOINT

    @property
    def selection(self) -> dict[str, Any]:
        """What decides the file set; a lock for another selection is stale."""
        return {"revision": self.revision, "allow_patterns": list(self.allow_patterns),
                "ignore_patterns": list(self.ignore_patterns), "variant": self.variant}


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, as huggingface_hub resolves it, read per call (it reads the variables once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def hub_endpoint(model: HubModel) -> str:
    """The manifest's hub_endpoint, else HF_ENDPOINT (a mirror), else huggingface.co."""
    return (model.endpoint or os.environ.get("HF_ENDPOINT") or HF_DEFAULT_ENDPOINT).rstrip("/")


def repo_folder(repo: str, cache: Path) -> Path:
    """The repo's folder in the cache (huggingface_hub's `models--org--name` layout)."""
    return cache / ("models--" + repo.replace("/", "--"))


# --------------------------------------------------------------------------- manifest entries
def _patterns(raw: dict, key: str, label: str) -> tuple[str, ...]:
    value = raw.get(key) or []
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InputDataError(f"{label}: {key} must be a list of glob patterns, got {value!r}", fix='e.g. ["*.json", "unet/*"]')
    return tuple(value)


def hub_entry(raw: Any, index: int, where: str, endpoint: str | None = None) -> HubModel:
    """Validate one `hub:` entry, naming it and the bad key; the revision must be a pinned 40-hex commit."""
    name = raw.get("name") if isinstance(raw, dict) else None
    label = f"{where}: hub[{index}]" + (f" ({name})" if name else "")
    if not isinstance(raw, dict):
        raise InputDataError(f"{label}: expected a mapping, got {type(raw).__name__}")
    if set(raw) - KEYS:
        raise InputDataError(f"{label}: unknown key(s) {sorted(set(raw) - KEYS)}", fix=f"keys: {', '.join(sorted(KEYS))}")
    repo = str(raw.get("repo") or "")
    if not name or not REPO_ID.match(repo) or ".." in repo:
        raise InputDataError(f"{label}: name and repo (owner/name) are required, got repo {repo!r}", fix="see params/models-pod.yaml")
    revision = str(raw.get("revision") or "").lower()
    if not COMMIT.match(revision):
        raise InputDataError(
            f"{label}: revision must be the 40-hex commit hash to pin {repo} to, got {raw.get('revision')!r}",
            fix=f"open https://huggingface.co/{repo}/commits/main, copy the full hash of the commit you tested "
            "and set it as revision: (a branch like main can move under you)")
    variant = raw.get("variant")
    if variant is not None and (not isinstance(variant, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", variant)):
        raise InputDataError(f"{label}: variant must be a word like fp16, got {variant!r}")
    return HubModel(str(name), repo, revision, _patterns(raw, "allow_patterns", label),
                    _patterns(raw, "ignore_patterns", label), variant, endpoint)


def select_files(paths: list[str], model: HubModel) -> list[str]:
    """The repo files to take: allow/ignore patterns, then for each folder the variant's weights where it has them."""
    from huggingface_hub.utils import filter_repo_objects

    picked = list(filter_repo_objects(paths, allow_patterns=list(model.allow_patterns) or None,
                                      ignore_patterns=list(model.ignore_patterns) or None))
    if not model.variant:
        return picked
    tag = f".{model.variant}."
    with_variant = {os.path.dirname(p) for p in picked if p.endswith(WEIGHTS) and tag in os.path.basename(p)}
    return [p for p in picked if not (p.endswith(WEIGHTS) and tag not in os.path.basename(p)
                                       and os.path.dirname(p) in with_variant)]


# --------------------------------------------------------------------------- verification
def git_blob_sha1(path: Path) -> str:
    """The git blob id of a file (what the hub lists as `oid` for files not stored in LFS)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _drop(link: Path) -> None:
    """Remove a refused file from the cache: its snapshot link and the blob it points to, so a rerun fetches it anew."""
    blob = Path(os.path.realpath(link))
    link.unlink(missing_ok=True)
    if blob != link and blob.is_file():
        blob.unlink()


def verify_files(model: HubModel, folder: Path, expected: dict[str, tuple[str, str]]) -> dict[str, dict]:
    """Hash every selected file of the snapshot against the hub; a mismatch is dropped and raised naming the file."""
    stamps = {}
    for rel, (algorithm, want) in expected.items():
        path = folder / rel
        if not path.is_file():
            raise DownloadError(f"{model.name}: {model.repo}/{rel} is missing from the snapshot after the download",
                                fix="rerun pistachio models; the files already verified are kept")
        found = sha256_file(path) if algorithm == "sha256" else git_blob_sha1(path)
        if found != want:
            _drop(path)
            raise ChecksumMismatchError(
                f"{model.name}: {model.repo}/{rel} at {model.revision[:12]} has {algorithm} {found}, the hub lists {want}",
                fix="the download was corrupted (or the mirror serves other bytes); it was removed from the cache: rerun")
        st = path.stat()
        stamps[rel] = {"hash": want, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    return stamps


# --------------------------------------------------------------------------- lock (what the stages read)
def read_lock(repo: str, cache: Path | None = None) -> dict | None:
    """The verified-snapshot record of `repo` in the cache, or None."""
    try:
        lock = read_json(repo_folder(repo, cache or hub_cache_dir()) / LOCK)
    except (OSError, ValueError):
        return None
    return lock if isinstance(lock, dict) and COMMIT.match(str(lock.get("revision", ""))) else None


def _unchanged(folder: Path, files: dict[str, dict]) -> bool:
    """Every locked file still there with the size and mtime it had when it was hashed."""
    try:
        return all((st := (folder / rel).stat()).st_size == f["size"] and st.st_mtime_ns == f["mtime_ns"]
                   for rel, f in files.items())
    except (OSError, KeyError, TypeError):
        return False


def local_snapshot(repo: str) -> tuple[Path, str | None] | None:
    """(snapshot folder, variant) of a verified download of `repo`, or None: no network, only the cache and its lock."""
    cache = hub_cache_dir()
    lock = read_lock(repo, cache)
    if lock is None:
        return None
    folder = repo_folder(repo, cache) / "snapshots" / lock["revision"]
    files = lock.get("files") if isinstance(lock.get("files"), dict) else {}
    return (folder, lock.get("variant")) if files and all((folder / rel).is_file() for rel in files) else None


# --------------------------------------------------------------------------- download
HUB_FIXES = {  # the hub's X-Error-Code -> what to do
    "RepoNotFound": "check repo: {repo}; for a gated or private repo accept its terms on the hub and export HF_TOKEN",
    "GatedRepo": "accept the repo's terms on huggingface.co/{repo} and export HF_TOKEN",
    "RevisionNotFound": "revision {revision} is not a commit of {repo}: copy the hash from its commits page",
}
NETWORK_FIX = "check the network (and HF_ENDPOINT if you use a mirror), then rerun: finished files are kept"
TREE_PAGE_LIMIT = 1000  # pages of the tree listing, a bound against a server that links pages in a loop


def _hub_error(model: HubModel, what: str, code: str = "") -> DownloadError:
    """A failed hub call as a DownloadError naming the model, with the fix its error code calls for."""
    fix = HUB_FIXES.get(code, NETWORK_FIX).format(repo=model.repo, revision=model.revision)
    return DownloadError(f"{model.name}: cannot download {model.repo}@{model.revision[:12]}: {scrub(what)[:300]}", fix=fix)


def list_hub_files(model: HubModel, token: str | None, timeout: float) -> dict[str, tuple[str, str]]:
    """Every file at the pinned commit with the hash the hub lists: path -> ("sha256", LFS oid) or ("git-sha1", oid).

    The hub's tree API, paged by its Link header. Asked here, with a timeout, because huggingface_hub 2.4's
    `list_repo_tree` (and `snapshot_download`, which calls it) sends this request with none.
    """
    import requests

    url: str | None = f"{hub_endpoint(model)}/api/models/{model.repo}/tree/{model.revision}?recursive=true"
    headers = {"Authorization": f"Bearer {token}"} if token else {}  # requests drops it on a redirect to another host
    files: dict[str, tuple[str, str]] = {}
    for _ in range(TREE_PAGE_LIMIT):
        try:
            resp = requests.get(url, headers=headers, timeout=timeout)
            page = resp.json() if resp.status_code == 200 else None
        except (requests.RequestException, ValueError) as err:
            raise _hub_error(model, f"tree listing: {type(err).__name__}: {err}") from None
        if not isinstance(page, list):
            code = resp.headers.get("X-Error-Code", "")
            raise _hub_error(model, f"tree listing: HTTP {resp.status_code} {code}".rstrip(), code)
        for item in page:
            if isinstance(item, dict) and item.get("type") == "file":
                lfs, rel = item.get("lfs") or {}, str(item.get("path"))
                if rel.startswith("/") or "\\" in rel or ".." in rel.split("/") or any(ord(c) < 32 for c in rel):
                    raise _hub_error(model, f"the hub lists a file path outside the repo: {rel[:200]!r}; nothing downloaded")
                files[rel] = ("sha256", str(lfs["oid"])) if lfs.get("oid") else ("git-sha1", str(item["oid"]))
        url = resp.links.get("next", {}).get("url")
        if not url:
            return files
    raise _hub_error(model, f"tree listing: more than {TREE_PAGE_LIMIT} pages")


def _fetch(model: HubModel, files: list[str], cache: Path, token: str | None, timeout: float) -> None:
    """`hf_hub_download` each file into the cache (4 at a time); HEAD waits `timeout`, reads HF_HUB_DOWNLOAD_TIMEOUT."""
    from concurrent.futures import ThreadPoolExecutor

    from huggingface_hub import hf_hub_download

    def one(rel: str) -> str:
        return hf_hub_download(model.repo, rel, revision=model.revision, cache_dir=cache, endpoint=hub_endpoint(model),
                               token=token or False, etag_timeout=timeout)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in tqdm(pool.map(one, files), total=len(files), desc=model.name, unit="file", leave=False):
            pass


def ensure_hub_model(model: HubModel, timeout: float = 30.0) -> tuple[str, int]:
    """Make `model`'s snapshot present and verified; returns (present | downloaded, total bytes)."""
    cache = hub_cache_dir()
    folder = repo_folder(model.repo, cache) / "snapshots" / model.revision
    lock = read_lock(model.repo, cache)
    if lock and {k: lock.get(k) for k in model.selection} == model.selection and _unchanged(folder, lock.get("files") or {}):
        return "present", sum(f["size"] for f in lock["files"].values())  # verified before, unchanged: no network
    token = get_secret("HF_TOKEN")  # the environment only, never a token file or the params
    listed = list_hub_files(model, token, timeout)
    wanted = select_files(sorted(listed), model)
    if not wanted:
        raise InputDataError(f"{model.name}: no file of {model.repo}@{model.revision[:12]} matches allow_patterns "
                             f"{list(model.allow_patterns)} / ignore_patterns {list(model.ignore_patterns)}",
                             fix="correct the patterns in the manifest (see the repo's file list on the hub)")
    try:
        _fetch(model, wanted, cache, token, timeout)
    except OSError:
        raise  # our disk (full, read-only): the caller's row says so
    except Exception as err:  # noqa: BLE001 - huggingface_hub's HTTP errors and httpx transport errors
        response = getattr(err, "response", None)
        code = response.headers.get("X-Error-Code", "") if response is not None else ""
        raise _hub_error(model, f"{type(err).__name__}: {err}", code) from None
    stamps = verify_files(model, folder, {p: listed[p] for p in wanted})
    write_json(repo_folder(model.repo, cache) / LOCK, {**model.selection, "repo": model.repo, "files": stamps})
    return "downloaded", sum(s["size"] for s in stamps.values())


def load_hub_manifest(path: str | Path) -> list[HubModel]:
    """The manifest's `hub:` entries, validated (an empty list when it has none), with its `hub_endpoint` if set."""
    lists = read_manifest(path)
    endpoint = lists["hub_endpoint"]
    if endpoint is not None and not re.match(r"^https?://[^/\s@]+(/|$)", str(endpoint)):
        raise InputDataError(f"{path}: hub_endpoint must be an http(s):// address without credentials, got {scrub(str(endpoint))!r}",
                             fix="leave it out for huggingface.co (or set HF_ENDPOINT for a mirror)")
    models = [hub_entry(raw, i, str(path), endpoint) for i, raw in enumerate(lists["hub"])]
    dupes = sorted({m.repo for m in models if sum(x.repo == m.repo for x in models) > 1})
    if dupes:
        raise InputDataError(f"{path}: hub repo(s) listed twice: {dupes}", fix="keep one entry per repo (one pinned revision)")
    return models


def ensure_hub_rows(models: list[HubModel], timeout: float) -> list[dict]:
    """One table row per hub snapshot (`hub:<repo>@<commit>`); a failure is its row, the others still run."""
    rows = []
    for model in tqdm(models, desc="hub models", unit="repo", disable=len(models) < 2):
        start, size, detail = time.perf_counter(), None, ""
        try:
            status, size = ensure_hub_model(model, timeout)
            detail = f"in {repo_folder(model.repo, hub_cache_dir())}"  # where it went: HF_HOME on the persistent volume?
        except PistachioError as err:
            status, detail = "failed", str(err)
        except OSError as err:  # e.g. the cache volume is full or read-only
            status, detail = "failed", f"{model.name}: {err}"
        rows.append(table_row(model.name, f"hub:{model.repo}@{model.revision[:12]}", status, size, start, detail))
    return rows
