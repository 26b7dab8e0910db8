"""Download manifests cannot write outside the models folder, and never carry a token (it comes from the env)."""

from __future__ import annotations


import pytest

import pistachio_nb.downloads as downloads
from pistachio_nb.downloads import load_manifest
from pistachio_nb.errors import InputDataError

from .test_downloads import PAYLOAD, manifest, run, served, url_entry  # noqa: F401 - served is a fixture

SHA = "0" * 64


def _entry(**over):
    return {"name": "evil", "source": {"url": "https://example.org/files/model.safetensors"}, "dest": "checkpoints",
            "sha256": SHA, **over}


@pytest.mark.parametrize("filename", ["../../../x", "/etc/passwd", "sub/model.safetensors", "..", ".", "a\\b",
                                      ".model.safetensors.sha256", "x\x00y", "x\ny"])
def test_manifest_filename_must_be_one_plain_name(tmp_path, filename):
    path = manifest(tmp_path, [_entry(filename=filename)])
    with pytest.raises(InputDataError, match=r"models\[0\] \(evil\): filename: .*one plain file name"):
        load_manifest(path, tmp_path / "models")


@pytest.mark.parametrize("source,key", [({"url": "https://example.org/a/.."}, "source.url"),
                                        ({"url": "https://example.org/"}, "source.url"),
                                        ({"hf_repo": "org/repo", "filename": "sub/.."}, "source.filename")])
def test_derived_filename_is_checked_too(tmp_path, source, key):
    path = manifest(tmp_path, [_entry(source=source)])
    with pytest.raises(InputDataError, match=rf"\(evil\): {key}: the file name taken from it must be one plain"):
        load_manifest(path, tmp_path / "models")


def test_nothing_is_written_outside_the_models_folder(tmp_path, served):
    server = served()
    entry = {**url_entry(server), "filename": "../../../escaped.safetensors"}
    with pytest.raises(InputDataError, match="filename"):
        run(tmp_path, [entry])
    assert not list(tmp_path.rglob("*escaped*"))


def test_symlink_leading_out_of_the_models_folder_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "checkpoints").symlink_to(outside)
    with pytest.raises(InputDataError, match="outside the models folder"):
        load_manifest(manifest(tmp_path, [_entry()]), tmp_path / "models")


def test_plain_names_still_load(tmp_path):
    entries = load_manifest(manifest(tmp_path, [_entry(filename="my model v2.safetensors")]), tmp_path / "models")
    assert entries[0].dest == tmp_path / "models" / "checkpoints" / "my model v2.safetensors"


@pytest.mark.parametrize("url", ["https://civitai.com/api/download/models/1?type=Model&token=abcdef123456",
                                 "https://user:hunter2hunter2@example.org/m.safetensors",
                                 "https://example.org/m.safetensors?api_key=abcdef123456"])
def test_manifest_url_with_a_credential_is_refused_without_echoing_it(tmp_path, url):
    with pytest.raises(InputDataError) as err:
        load_manifest(manifest(tmp_path, [_entry(source={"url": url})]), tmp_path / "models")
    msg = str(err.value)
    assert "carries a credential" in msg and "abcdef123456" not in msg and "hunter2" not in msg
    if "civitai" in url:
        assert "CIVITAI_API_KEY" in msg


def test_civitai_token_comes_from_the_environment_as_a_header(tmp_path, served, monkeypatch):
    server = served()
    monkeypatch.setattr(downloads, "CIVITAI_HOSTS", ("127.0.0.1",))  # the test server stands in for civitai.com
    monkeypatch.setenv("CIVITAI_API_KEY", "civitai_key_987654")
    table = run(tmp_path, [url_entry(server)])
    assert table["status"].tolist() == ["downloaded"]
    assert server.seen[0][2] == "Bearer civitai_key_987654" and "civitai_key" not in server.seen[0][0]


def test_civitai_key_is_not_sent_to_other_hosts(tmp_path, served, monkeypatch):
    server = served()
    monkeypatch.setenv("CIVITAI_API_KEY", "civitai_key_987654")
    run(tmp_path, [url_entry(server)])
    assert server.seen[0][2] is None


@pytest.mark.parametrize("evil", ["../escape.json", "/abs.json", "a/../../up.json", "win\\dows.json"])
def test_a_hub_listing_a_path_outside_the_repo_downloads_nothing(tmp_path, monkeypatch, evil):
    import yaml

    from pistachio_nb.downloads import ensure_models
    from pistachio_testkit.hub_server import HubFile, serve_hub

    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "config.json").write_text("{}")
    hub = serve_hub({"org/x": tmp_path / "repo"})
    hub.repos["org/x"].files[evil] = HubFile(evil, 2, "0" * 40, None)  # a hostile tree listing
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"hub_endpoint": hub.url, "hub": [{"name": "x", "repo": "org/x",
                                                                       "revision": hub.commit("org/x")}]}))
    try:
        row = ensure_models(str(path), tmp_path / "models").iloc[0]
    finally:
        hub.close()
    assert row["status"] == "failed" and "outside the repo" in row["detail"]
    assert not (tmp_path / "hf" / "hub").exists() and not any(r[0] == "HEAD" for r in hub.requests)
