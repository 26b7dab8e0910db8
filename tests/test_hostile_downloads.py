"""ensure_models against hostile or broken sources on 127.0.0.1: over-long bodies, non-http redirects, a full disk."""

from __future__ import annotations

import errno
import hashlib
import time
from pathlib import Path

import pytest
import yaml

from pistachio_nb.downloads import ensure_models
from pistachio_testkit.fileserver import RangeFileHandler, serve_folder

GOOD = bytes(range(256)) * 400  # 102,400 bytes
SMALL = 50_000  # what the hostile entry's manifest claims
MiB = 1 << 20


class Hostile(RangeFileHandler):
    """`/endless` streams zeros without Content-Length; `/liar` announces 30 MB; `/ftp` redirects to ftp://."""

    def do_GET(self, body: bool = True) -> None:
        if self.path in ("/endless", "/liar"):
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if self.path == "/liar":
                self.send_header("Content-Length", str(30 * MiB))
            self.send_header("Connection", "close")
            self.close_connection = True
            self.end_headers()
            block = b"\0" * (256 << 10)
            try:
                for _ in range(120):  # at most 30 MB, bounded
                    self.wfile.write(block)
                    self.server.sent += len(block)
            except OSError:  # the client hung up: expected
                pass
        elif self.path == "/ftp":
            self.send_response(302)
            self.send_header("Location", f"ftp://127.0.0.1:{self.server.server_address[1]}/model.bin")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            super().do_GET(body)


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "remote"
    root.mkdir()
    (root / "good.bin").write_bytes(GOOD)
    with serve_folder(root, handler=Hostile) as srv:
        srv.sent = 0
        yield srv


def entry(url: str, name: str, size: int, sha: str = "0" * 64) -> dict:
    return {"name": name, "source": {"url": url}, "dest": "checkpoints", "sha256": sha, "size": size,
            "filename": f"{name}.bin"}


def run(tmp_path: Path, entries: list[dict]):
    manifest = tmp_path / "models.yaml"
    manifest.write_text(yaml.safe_dump({"models": entries}), encoding="utf-8")
    return ensure_models(manifest, tmp_path / "models", retry_wait=0.01, timeout=5)


def good(server) -> dict:
    return entry(f"{server.url}/good.bin", "good", len(GOOD), hashlib.sha256(GOOD).hexdigest())


@pytest.mark.parametrize("route, words", [("/endless", "sent more than the manifest size of 50000"),
                                          ("/liar", f"announces {30 * MiB} bytes")])
def test_a_body_longer_than_the_manifest_size_is_cut_off_at_once(tmp_path, server, route, words):
    start = time.monotonic()
    table = run(tmp_path, [entry(f"{server.url}{route}", "big", SMALL), good(server)])
    assert table["status"].tolist() == ["failed", "downloaded"]
    assert words in table["detail"][0]
    folder = tmp_path / "models" / "checkpoints"
    parts = [p.stat().st_size for p in folder.glob(".big.bin.*")]
    assert all(size <= SMALL for size in parts)  # never more than the manifest size on disk (today: the part is dropped)
    assert not (folder / "big.bin").exists() and (folder / "good.bin").read_bytes() == GOOD
    assert time.monotonic() - start < 10


def test_a_redirect_to_ftp_is_a_failed_row_and_later_entries_run(tmp_path, server):
    table = run(tmp_path, [entry(f"{server.url}/ftp", "ftp", SMALL), good(server)])
    assert table["status"].tolist() == ["failed", "downloaded"]
    assert "ftp://" in table["detail"][0] and "http(s)" in table["detail"][0]


def test_an_ftp_endpoint_for_a_hub_file_is_a_failed_row(tmp_path, server, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "ftp://127.0.0.1")
    hub = {"name": "hub", "source": {"hf_repo": "org/repo", "filename": "w.bin"}, "dest": "loras",
           "sha256": "0" * 64, "size": SMALL}
    table = run(tmp_path, [hub, good(server)])
    assert table["status"].tolist() == ["failed", "downloaded"]
    assert "ftp://127.0.0.1" in table["detail"][0]


def test_a_full_disk_is_a_failed_row_and_later_entries_run(tmp_path, server, monkeypatch):
    real_open = Path.open

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    def open_(self, mode="r", *args, **kwargs):
        fh = real_open(self, mode, *args, **kwargs)
        return Full(fh) if self.name == ".first.bin.part" else fh

    monkeypatch.setattr(Path, "open", open_)
    first = {**good(server), "name": "first", "filename": "first.bin"}
    table = run(tmp_path, [first, good(server)])
    assert table["status"].tolist() == ["failed", "downloaded"]
    assert "No space left on device" in table["detail"][0] and "free disk space" in table["detail"][0]
