"""A local server speaking the Hugging Face Hub's file API for folders served as model repos (127.0.0.1, port 0).

Enough of the API for huggingface_hub's `snapshot_download` / `hf_hub_download` / `list_repo_tree` /
`model_info` with `HF_ENDPOINT` (or `endpoint=`) pointing here: model info, the recursive tree listing
(git blob ids, LFS sha256 and sizes), and `resolve/<revision>/<file>` answering as the hub does (small
files 200 with `ETag` + `X-Repo-Commit`; weights 302 to a CDN path with `X-Linked-Etag` = sha256 and
`X-Linked-Size`), errors with the hub's `X-Error-Code`. Each repo has one commit, hashed from its
content; files are indexed at start, so a file changed afterwards is served with its old hashes (a
corrupted transfer, for the tests). `requests` records every request, to prove stages never call it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .fileserver import FileServer, RangeFileHandler

LFS_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".msgpack", ".onnx", ".h5")  # the hub's .gitattributes


def git_blob_id(data: bytes) -> str:
    """git's object id of a blob (what the hub calls a file's `oid`)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class HubFile:
    """One file of a served repo, hashed as the hub lists it."""

    path: str
    size: int
    blob_id: str  # of the LFS pointer for weights, as on the hub
    sha256: str | None  # weights only (stored in LFS)

    def entry(self) -> dict:
        """The file's `tree` listing entry."""
        item = {"type": "file", "oid": self.blob_id, "size": self.size, "path": self.path}
        if self.sha256:
            item["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": len(lfs_pointer(self.sha256, self.size))}
        return item


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file git stores in place of the weights (the hub's blob id is this file's)."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass(frozen=True)
class HubRepo:
    """A folder served as a model repo with one commit."""

    repo_id: str
    root: Path
    files: dict[str, HubFile]
    commit: str


def index_repo(repo_id: str, root: str | Path) -> HubRepo:
    """Hash every file below `root`; the commit id is a hash of the (path, blob id) list, so it follows the content."""
    root = Path(root).resolve()
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel, data = path.relative_to(root).as_posix(), path.read_bytes()
        if path.suffix in LFS_SUFFIXES:
            sha = hashlib.sha256(data).hexdigest()
            files[rel] = HubFile(rel, len(data), git_blob_id(lfs_pointer(sha, len(data))), sha)
        else:
            files[rel] = HubFile(rel, len(data), git_blob_id(data), None)
    commit = hashlib.sha1("".join(f"{f.path} {f.blob_id}\n" for f in files.values()).encode()).hexdigest()
    return HubRepo(repo_id, root, files, commit)


class HubHandler(RangeFileHandler):
    """Routes the hub's API paths; file bytes (and Range) come from the file server's handler."""

    server: HubServer

    def end_headers(self) -> None:
        for name, value in getattr(self, "extra_headers", {}).items():
            self.send_header(name, value)
        super().end_headers()

    def _target(self) -> Path | None:
        """The CDN path `/cdn/<owner>/<name>/<file>` names a repo file (the resolve route redirects there)."""
        parts = unquote(urlsplit(self.path).path).lstrip("/").split("/", 3)
        repo = self.server.repos.get("/".join(parts[1:3])) if len(parts) == 4 and parts[0] == "cdn" else None
        return repo.root / parts[3] if repo and parts[3] in repo.files else None

    def _error(self, status: int, code: str, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        self.extra_headers = {"X-Error-Code": code, "X-Error-Message": message}
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, data: object, body: bool) -> None:
        raw = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        if body:
            self.wfile.write(raw)

    def do_GET(self, body: bool = True) -> None:
        self.extra_headers = {}
        self.server.requests.append((self.command, self.path))
        parts = [unquote(p) for p in urlsplit(self.path).path.strip("/").split("/")]
        if parts[:1] == ["cdn"]:
            super().do_GET(body)
        elif parts[:2] == ["api", "agent-harnesses"]:
            self._json({"standardEnvVars": [], "harnesses": {}}, body)  # huggingface_hub asks for it in every header build
        elif parts[:2] == ["api", "models"] and len(parts) >= 4:
            self._api("/".join(parts[2:4]), parts[4:], body)
        elif len(parts) >= 5 and parts[2] == "resolve":
            self._resolve("/".join(parts[:2]), parts[3], "/".join(parts[4:]), body)
        else:
            self._error(404, "EntryNotFound", f"no route for {self.path}")

    def _repo_at(self, repo_id: str, revision: str) -> HubRepo | None:
        repo = self.server.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
        elif revision not in (repo.commit, "main"):
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        else:
            return repo
        return None

    def _api(self, repo_id: str, rest: list[str], body: bool) -> None:
        revision = rest[1] if rest[:1] in (["revision"], ["tree"]) and len(rest) > 1 else "main"
        repo = self._repo_at(repo_id, revision)
        if repo is None:
            return
        if rest[:1] == ["tree"]:
            prefix = "/".join(rest[2:])
            self._json(tree_listing(repo, prefix, "recursive=true" in (urlsplit(self.path).query or "").lower()), body)
        elif not rest or rest[0] == "revision":
            self._json({"id": repo_id, "modelId": repo_id, "sha": repo.commit, "private": False, "disabled": False,
                        "gated": False, "siblings": [{"rfilename": p} for p in repo.files]}, body)
        else:
            self._error(404, "EntryNotFound", f"no route for {self.path}")

    def _resolve(self, repo_id: str, revision: str, path: str, body: bool) -> None:
        repo = self._repo_at(repo_id, revision)
        if repo is None:
            return
        item = repo.files.get(path)
        if item is None:
            self.extra_headers = {"X-Repo-Commit": repo.commit}
            self._error(404, "EntryNotFound", f"{path} does not exist on {revision}")
            return
        self.extra_headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{item.blob_id}"'}
        if item.sha256 is None:  # a small file: the bytes themselves, through the CDN route's file lookup
            self.path = f"/cdn/{repo_id}/{path}"
            super().do_GET(body)
            return
        self.extra_headers |= {"X-Linked-Etag": f'"{item.sha256}"', "X-Linked-Size": str(item.size),
                               "Location": f"{self.server.cdn_url}/cdn/{repo_id}/{path}"}
        self.send_response(302)
        self.send_header("Content-Length", "0")
        self.end_headers()


def tree_listing(repo: HubRepo, prefix: str, recursive: bool) -> list[dict]:
    """The `tree/<revision>/<prefix>` answer: files and folders below `prefix` (direct children unless recursive)."""
    base = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    below = [f for p, f in repo.files.items() if p.startswith(base)]
    folders = sorted({"/".join(f.path.split("/")[:i]) for f in below for i in range(base.count("/") + 1, f.path.count("/") + 1)})
    entries = [{"type": "directory", "oid": git_blob_id(d.encode()), "size": 0, "path": d} for d in folders]
    entries += [f.entry() for f in below]
    return entries if recursive else [e for e in entries if e["path"].count("/") == base.count("/")]


class HubServer(FileServer):
    """`.url` for HF_ENDPOINT, `.repos` by id, `.requests` as (method, path) in arrival order, `.close()`.

    Weights are redirected to a second port, the "CDN": huggingface_hub follows redirects on the hub's own
    origin but stops at another one and reads the metadata from the redirect, as it does with the real CDN.
    """

    def __init__(self, repos: dict[str, Path], port: int = 0, hub: HubServer | None = None) -> None:
        self.repos = hub.repos if hub else {repo_id: index_repo(repo_id, root) for repo_id, root in repos.items()}
        self.requests: list[tuple[str, str]] = hub.requests if hub else []
        super().__init__(Path("/"), port, HubHandler)
        self.cdn = None if hub else HubServer({}, 0, hub=self)  # the CDN shares the repos and the request log

    @property
    def cdn_url(self) -> str:
        """Where weights are redirected to (another origin than `url`)."""
        return (self.cdn or self).url

    def commit(self, repo_id: str) -> str:
        """The repo's one commit id (what a manifest pins)."""
        return self.repos[repo_id].commit

    def close(self) -> None:
        super().close()
        if self.cdn:
            self.cdn.close()


def serve_hub(repos: dict[str, str | Path], port: int = 0) -> HubServer:
    """Serve folders as hub repos (`{"owner/name": folder}`) on 127.0.0.1 from background threads (hub + CDN)."""
    server = HubServer({k: Path(v) for k, v in repos.items()}, port)
    for srv in (server, server.cdn):  # type: ignore[union-attr]
        threading.Thread(target=srv.serve_forever, name=f"hub:{srv.url}", daemon=True).start()
    return server


def write_tiny_repo(kind: str, dest: str | Path, variant: str | None = None) -> Path:
    """A tiny model (`pistachio_nb.models.ensure_tiny`) laid out as a hub repo in `dest`, plus `<name>.<variant>`
    copies of its weights in half precision when `variant` is given (as SDXL's repo has `*.fp16.safetensors`)."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from pistachio_nb.models import MARKER, ensure_tiny

    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(ensure_tiny(kind), dest, ignore=shutil.ignore_patterns(MARKER))
    for weights in sorted(dest.rglob("*.safetensors")) if variant else []:
        half = {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in load_file(weights).items()}
        save_file(half, weights.with_name(f"{weights.stem}.{variant}.safetensors"), metadata={"format": "pt"})
    return dest
