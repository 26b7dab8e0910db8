"""ensure_models against a real HTTP server on 127.0.0.1: skip, resume, drops, mismatch, server errors, hub auth."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import yaml

from pistachio_nb.downloads import ensure_models, load_manifest
from pistachio_nb.errors import InputDataError
from pistachio_nb.paths import repo_root
from pistachio_testkit.demo_model_source import DEMO_FILES, write_demo_files
from pistachio_testkit.fileserver import RangeFileHandler, serve_folder

PAYLOAD = bytes(range(256)) * 12288  # 3 MiB: several 1 MiB stream chunks


class RecordingHandler(RangeFileHandler):
    """Records each request's path, Range and Authorization headers on the server."""

    def do_GET(self, body: bool = True) -> None:
        self.server.seen.append((self.path, self.headers.get("Range"), self.headers.get("Authorization")))
        super().do_GET(body)


class DropOnceHandler(RecordingHandler):
    """The first response stops after 1.6 MB and closes the connection, like a dropped pod network."""

    def send_body(self, path, start, end):
        if len(self.server.seen) == 1:
            with path.open("rb") as fh:
                fh.seek(start)
                self.wfile.write(fh.read(1_600_000))
            self.close_connection = True
            return
        super().send_body(path, start, end)


class IgnoreRangeHandler(RecordingHandler):
    def do_GET(self, body: bool = True) -> None:
        del self.headers["Range"]
        super().do_GET(body)


class ErrorHandler(RecordingHandler):
    def do_GET(self, body: bool = True) -> None:
        self.server.seen.append((self.path, None, None))
        self.send_error(500, "internal error")


@pytest.fixture
def served(tmp_path):
    """A folder with one file, served by a handler the test picks; yields (start, folder)."""
    root = tmp_path / "remote"
    (root / "org" / "repo" / "resolve" / "main").mkdir(parents=True)
    (root / "model.safetensors").write_bytes(PAYLOAD)
    (root / "org" / "repo" / "resolve" / "main" / "weights.safetensors").write_bytes(PAYLOAD)
    servers = []

    def start(handler=RecordingHandler):
        server = serve_folder(root, handler=handler)
        server.seen = []
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def manifest(tmp_path: Path, entries: list[dict]) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"models": entries}), encoding="utf-8")
    return path


def url_entry(server, sha: str | None = None, size: int | None = len(PAYLOAD), name: str = "model") -> dict:
    entry = {"name": name, "source": {"url": f"{server.url}/model.safetensors"}, "dest": "checkpoints",
             "sha256": sha or hashlib.sha256(PAYLOAD).hexdigest()}
    return {**entry, "size": size} if size else entry


def run(tmp_path, entries, **kw):
    return ensure_models(manifest(tmp_path, entries), tmp_path / "models", retry_wait=0.01, **kw)


def test_download_then_skip_verified(tmp_path, served):
    server = served()
    first = run(tmp_path, [url_entry(server)])
    dest = tmp_path / "models" / "checkpoints" / "model.safetensors"
    assert first["status"].tolist() == ["downloaded"]
    assert dest.read_bytes() == PAYLOAD
    assert not list(dest.parent.glob("*.part"))
    second = run(tmp_path, [url_entry(server)])
    assert second["status"].tolist() == ["present"]
    assert len(server.seen) == 1  # the rerun made no request at all


def test_resume_from_partial_file(tmp_path, served):
    server = served()
    part = tmp_path / "models" / "checkpoints" / ".model.safetensors.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(PAYLOAD[:300_000])
    table = run(tmp_path, [url_entry(server)])
    assert table["status"].tolist() == ["downloaded"]
    assert server.seen[0][1] == "bytes=300000-"
    assert (part.parent / "model.safetensors").read_bytes() == PAYLOAD


def test_dropped_connection_is_resumed_in_the_same_call(tmp_path, served):
    server = served(DropOnceHandler)
    table = run(tmp_path, [url_entry(server)])
    assert table["status"].tolist() == ["downloaded"]
    ranges = [r for _, r, _ in server.seen]
    assert len(ranges) == 2 and ranges[0] is None
    assert 0 < int(ranges[1].removeprefix("bytes=").rstrip("-")) <= 1_600_000  # resumed, not restarted
    assert (tmp_path / "models" / "checkpoints" / "model.safetensors").read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts_cleanly(tmp_path, served):
    server = served(IgnoreRangeHandler)
    part = tmp_path / "models" / "checkpoints" / ".model.safetensors.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 1000)  # would corrupt the file if appended to
    assert run(tmp_path, [url_entry(server)])["status"].tolist() == ["downloaded"]
    assert (part.parent / "model.safetensors").read_bytes() == PAYLOAD


def test_checksum_mismatch_is_refused_and_nothing_installed(tmp_path, served):
    server = served()
    table = run(tmp_path, [url_entry(server, sha="0" * 64)])
    folder = tmp_path / "models" / "checkpoints"
    assert table["status"].tolist() == ["failed"]
    assert "sha256" in table["detail"][0] and "0" * 64 in table["detail"][0]
    assert not (folder / "model.safetensors").exists() and not list(folder.glob(".*.part"))


def test_existing_file_with_other_content_is_not_overwritten(tmp_path, served):
    server = served()
    dest = tmp_path / "models" / "checkpoints" / "model.safetensors"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"the user's own file")
    table = run(tmp_path, [url_entry(server)])
    assert table["status"].tolist() == ["failed"]
    assert "refusing to overwrite" in table["detail"][0]
    assert dest.read_bytes() == b"the user's own file" and server.seen == []


def test_server_error_fails_that_row_and_continues(tmp_path, served):
    bad, good = served(ErrorHandler), served()
    table = run(tmp_path, [url_entry(bad, name="broken"), url_entry(good, name="fine") | {"dest": "loras"}])
    assert table["status"].tolist() == ["failed", "downloaded"]
    assert "HTTP 500" in table["detail"][0]


def test_hub_source_sends_token_from_environment(tmp_path, served, monkeypatch):
    server = served()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token_123")
    entry = {"name": "hub", "source": {"hf_repo": "org/repo", "filename": "weights.safetensors", "revision": "main"},
             "dest": "loras", "sha256": hashlib.sha256(PAYLOAD).hexdigest()}
    plain = url_entry(server, name="plain")
    table = run(tmp_path, [entry, plain])
    assert table["status"].tolist() == ["downloaded", "downloaded"]
    assert server.seen[0][0] == "/org/repo/resolve/main/weights.safetensors"
    assert server.seen[0][2] == "Bearer hf_test_token_123"
    assert server.seen[1][2] is None  # never sent to non-hub URLs


@pytest.mark.parametrize("bad, words", [
    ({"sha256": "abc"}, "sha256 must be 64 hex"),
    ({"source": {"repo": "x"}}, "hf_repo + filename or url"),
    ({"dest": "../outside"}, "below the ComfyUI models folder"),
    ({"size": -3}, "positive number of bytes"),
    ({"sha": "typo"}, "unknown key"),
])
def test_manifest_errors_name_the_entry(tmp_path, bad, words):
    entry = {"name": "sdxl", "source": {"url": "http://127.0.0.1:1/x.safetensors"}, "dest": "checkpoints",
             "sha256": "a" * 64, **bad}
    with pytest.raises(InputDataError) as err:
        load_manifest(manifest(tmp_path, [entry]), tmp_path)
    assert "models[0] (sdxl)" in str(err.value) and words in str(err.value)


def test_demo_manifest_is_filled_with_the_service_url_and_matches_the_files(tmp_path):
    """The demo manifest's sha256/size are the bytes the demo service serves (a pin bump would show here)."""
    from pistachio_nb.hub_models import load_hub_manifest
    from pistachio_testkit.services import DEMO_HUB_REPOS, model_files

    home_before = os.environ.get("HF_HOME")
    values, stop = model_files(tmp_path / "ws")
    try:
        entries = load_manifest(values["models_manifest"], tmp_path / "models")
        assert sorted(e.dest.name for e in entries) == sorted(DEMO_FILES)
        assert all(e.url.startswith("http://127.0.0.1:") for e in entries)
        fetched = ensure_models(values["models_manifest"], tmp_path / "models", retry_wait=0.01)
        assert fetched["status"].tolist() == ["downloaded"] * (len(DEMO_FILES) + len(DEMO_HUB_REPOS))
        hub = load_hub_manifest(values["models_manifest"])  # the template's {revision:REPO}, filled with commits
        assert [m.repo for m in hub] == list(DEMO_HUB_REPOS) and all(len(m.revision) == 40 for m in hub)
        assert all(m.endpoint.startswith("http://127.0.0.1:") for m in hub) and "HF_ENDPOINT" not in os.environ
        assert os.environ["HF_HOME"] == str(tmp_path / "ws" / "hf-home")
        assert fetched["file"].tolist()[len(DEMO_FILES):] == [f"hub:{m.repo}@{m.revision[:12]}" for m in hub]
    finally:
        stop()
    assert os.environ.get("HF_HOME") == home_before  # the service puts HF_HOME back
    written = {p.name: p for p in write_demo_files(tmp_path / "again")}
    for e in entries:
        data = written[e.dest.name].read_bytes()
        assert (hashlib.sha256(data).hexdigest(), len(data)) == (e.sha256, e.size)
    assert load_manifest(repo_root() / "params" / "models-pod.yaml", tmp_path)[0].url.startswith("https://")


def test_the_unfilled_demo_template_is_refused_naming_the_entry(tmp_path):
    with pytest.raises(InputDataError, match=r"models\[0\].*http\(s\)://.*\{model_source\}"):
        load_manifest(repo_root() / "params" / "models-demo.yaml", tmp_path)


def test_cli_models_exit_codes(tmp_path, served, capsys):
    from pistachio_nb.cli import main

    server = served()
    args = ["models", "--params", str(repo_root() / "params" / "demo.yaml"), "--set", f"workspace={tmp_path / 'ws'}",
            "--set", f"comfy_models_dir={tmp_path / 'models'}"]
    good, bad = manifest(tmp_path, [url_entry(server)]), tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"models": [url_entry(server, sha="1" * 64) | {"dest": "vae"}]}), encoding="utf-8")
    assert main([*args, "--set", f"models_manifest={good}"]) == 0
    assert "downloaded" in capsys.readouterr().out
    assert main([*args, "--set", f"models_manifest={bad}"]) == 1
    assert "failed" in capsys.readouterr().out


def test_the_commented_wan_entries_load_once_uncommented_and_are_the_workflows_files(tmp_path):
    """The Wan2.2 block of models-pod.yaml, uncommented as its comment says: valid entries, real sha256 and size,
    and exactly the files the 08_video workflow's loaders name."""
    text = (repo_root() / "params" / "models-pod.yaml").read_text(encoding="utf-8")
    block = text[text.index("  # - name: Wan2.2 I2V A14B high-noise"):text.index("  # For 24 GB cards")]
    entries = yaml.safe_load("\n".join(line.replace("  # ", "  ", 1) for line in block.splitlines()))
    path = tmp_path / "wan.yaml"
    path.write_text(yaml.safe_dump({"models": entries}), encoding="utf-8")
    loaded = load_manifest(path, tmp_path / "models")
    assert len(loaded) == 4 and all(len(e.sha256) == 64 and e.size for e in loaded)
    workflow = (repo_root() / "pistachio_nb" / "workflows" / "wan22_i2v_14b.json").read_text(encoding="utf-8")
    assert all(f'"{e.dest.name}"' in workflow for e in loaded)
