"""The local hub answers as the real hub does for what we use: huggingface_hub itself is the client."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url, snapshot_download
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.utils.sha import git_hash

from pistachio_testkit.hub_server import serve_hub

FILES = {"config.json": b'{"hidden_size": 8}\n', "unet/config.json": b"{}\n", "unet/weights.safetensors": b"\x01" * 300,
         "unet/weights.fp16.safetensors": b"\x02" * 150, "README.md": b"# tiny\n"}


@pytest.fixture
def hub(tmp_path):
    root = tmp_path / "repo"
    for rel, data in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    server = serve_hub({"org/tiny": root})
    yield server
    server.close()


def test_model_info_and_tree_list_the_hub_hashes(hub):
    api = HfApi(endpoint=hub.url, token=False)
    info = api.model_info("org/tiny")
    assert info.sha == hub.commit("org/tiny") and len(info.sha) == 40
    assert sorted(s.rfilename for s in info.siblings) == sorted(FILES)
    tree = {e.path: e for e in api.list_repo_tree("org/tiny", revision=info.sha, recursive=True)}
    assert "unet" in tree and not hasattr(tree["unet"], "lfs")  # a folder entry (RepoFolder)
    weights = tree["unet/weights.safetensors"]
    assert weights.lfs.sha256 == hashlib.sha256(FILES["unet/weights.safetensors"]).hexdigest()
    assert weights.size == weights.lfs.size == 300
    assert tree["config.json"].lfs is None and tree["config.json"].blob_id == git_hash(FILES["config.json"])
    top = [e.path for e in api.list_repo_tree("org/tiny", revision=info.sha)]
    assert sorted(top) == ["README.md", "config.json", "unet"]


def test_resolve_headers_are_those_hf_hub_download_relies_on(hub):
    commit = hub.commit("org/tiny")
    small = get_hf_file_metadata(hf_hub_url("org/tiny", "config.json", revision="main", endpoint=hub.url), token=False)
    assert (small.commit_hash, small.etag, small.size) == (commit, git_hash(FILES["config.json"]), len(FILES["config.json"]))
    big = get_hf_file_metadata(hf_hub_url("org/tiny", "unet/weights.safetensors", revision=commit, endpoint=hub.url),
                               token=False)
    assert big.etag == hashlib.sha256(FILES["unet/weights.safetensors"]).hexdigest()  # X-Linked-Etag, as for LFS
    assert big.size == 300 and big.location.startswith(hub.cdn_url + "/cdn/")  # redirected off the hub's origin


def test_downloads_land_in_the_cache_layout_and_the_library_verifies_them(hub, tmp_path):
    cache = tmp_path / "cache"
    commit = hub.commit("org/tiny")
    path = Path(hf_hub_download("org/tiny", "unet/weights.safetensors", revision=commit, cache_dir=cache,
                                endpoint=hub.url, token=False))
    assert path.read_bytes() == FILES["unet/weights.safetensors"]
    assert path.resolve().name == hashlib.sha256(FILES["unet/weights.safetensors"]).hexdigest()  # blob named by etag
    folder = Path(snapshot_download("org/tiny", revision="main", cache_dir=cache, endpoint=hub.url, token=False))
    assert folder.name == commit and (folder.parent.parent / "refs" / "main").read_text() == commit
    assert {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} == set(FILES)
    check = HfApi(endpoint=hub.url, token=False).verify_repo_checksums("org/tiny", revision=commit, cache_dir=cache)
    assert check.checked_count == len(FILES) and not check.mismatches and not check.missing_paths


def test_errors_carry_the_hub_error_codes(hub, tmp_path):
    api = HfApi(endpoint=hub.url, token=False)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("org/none")
    with pytest.raises(RevisionNotFoundError):
        list(api.list_repo_tree("org/tiny", revision="0" * 40))
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("org/tiny", "nope.json", revision="main", cache_dir=tmp_path, endpoint=hub.url, token=False)


def test_every_request_is_recorded(hub):
    HfApi(endpoint=hub.url, token=False).model_info("org/tiny")
    assert ("GET", "/api/models/org/tiny") in hub.requests
