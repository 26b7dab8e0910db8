"""Hub snapshots through the manifest: download + verify into HF_HOME, refuse corruption, stages load offline only."""

from __future__ import annotations

import pytest
import torch
import yaml
from safetensors.torch import load_file

from pistachio_nb import models
from pistachio_nb.downloads import ensure_models
from pistachio_nb.errors import InputDataError, ModelLoadError
from pistachio_nb.hub_models import HubModel, load_hub_manifest, local_snapshot, select_files
from pistachio_nb.paths import repo_root
from pistachio_testkit.hub_server import serve_hub, write_tiny_repo

PATTERNS = ["*.json", "*.txt", "*.safetensors"]


@pytest.fixture(scope="module")
def repos(tmp_path_factory):
    root = tmp_path_factory.mktemp("repos")
    return {"tiny/clip": write_tiny_repo("clip", root / "clip"), "tiny/sdxl": write_tiny_repo("sdxl", root / "sdxl", "fp16")}


@pytest.fixture
def hub(repos, tmp_path, monkeypatch):
    """The tiny repos on a local hub, HF_ENDPOINT at it and HF_HOME in the test's folder (as a pod user exports them)."""
    server = serve_hub(repos)
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    yield server
    server.close()


def manifest(tmp_path, hub, **entries) -> str:
    hub_list = [{"name": repo, "repo": repo, "revision": hub.commit(repo), "allow_patterns": list(PATTERNS), **extra}
                for repo, extra in entries.items()]
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"hub": hub_list}), encoding="utf-8")
    return str(path)


def test_download_verifies_and_a_rerun_asks_the_hub_nothing(hub, tmp_path):
    path = manifest(tmp_path, hub, **{"tiny/clip": {}})
    first = ensure_models(path, tmp_path / "comfy-models")
    assert first[["file", "status"]].values.tolist() == [[f"hub:tiny/clip@{hub.commit('tiny/clip')[:12]}", "downloaded"]]
    folder, variant = local_snapshot("tiny/clip")
    assert folder == tmp_path / "hf-home" / "hub" / "models--tiny--clip" / "snapshots" / hub.commit("tiny/clip")
    assert variant is None and (folder / "model.safetensors").is_file()
    asked = len(hub.requests)
    again = ensure_models(path, tmp_path / "comfy-models")
    assert again["status"].tolist() == ["present"] and len(hub.requests) == asked


def test_a_corrupted_file_is_refused_naming_it_and_fetched_again_on_rerun(hub, repos, tmp_path):
    weights = repos["tiny/clip"] / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # same size: only the sha256 can tell
    try:
        row = ensure_models(manifest(tmp_path, hub, **{"tiny/clip": {}}), tmp_path / "m").iloc[0]
    finally:
        weights.write_bytes(good)
    assert row["status"] == "failed"
    assert "tiny/clip/model.safetensors" in row["detail"] and "sha256" in row["detail"]
    assert local_snapshot("tiny/clip") is None  # not marked verified: no stage will load it
    blobs = tmp_path / "hf-home" / "hub" / "models--tiny--clip" / "blobs"
    assert not any(b.stat().st_size == len(good) for b in blobs.iterdir())  # the bad blob is gone from the cache
    assert ensure_models(manifest(tmp_path, hub, **{"tiny/clip": {}}), tmp_path / "m")["status"].tolist() == ["downloaded"]


def test_stages_load_the_snapshot_offline_with_its_variant_and_never_call_the_hub(hub, repos, tmp_path, monkeypatch):
    ensure_models(manifest(tmp_path, hub, **{"tiny/clip": {}, "tiny/sdxl": {"variant": "fp16"}}), tmp_path / "m")
    snapshot, variant = local_snapshot("tiny/sdxl")
    assert variant == "fp16" and (snapshot / "unet" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    assert not (snapshot / "unet" / "diffusion_pytorch_model.safetensors").exists()  # the fp32 copy is not fetched
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    asked = len(hub.requests)
    clip = models.load_clip("tiny/clip", device="cpu")
    pipe = models.load_sdxl_pipeline("tiny/sdxl", device="cpu", dtype=torch.float32)
    assert len(hub.requests) == asked  # loading asked the hub nothing
    assert type(clip.model).__name__ == "CLIPModel" and pipe.unet.dtype == torch.float32
    fp16 = load_file(repos["tiny/sdxl"] / "unet" / "diffusion_pytorch_model.fp16.safetensors")
    name, value = next(iter(fp16.items()))
    assert torch.equal(pipe.unet.state_dict()[name], value.float())  # the fp16 weights, cast on load


def test_a_missing_snapshot_stops_the_stage_with_the_fix(hub):
    with pytest.raises(ModelLoadError) as err:
        models.load_clip("tiny/clip", device="cpu")
    assert "'tiny/clip' is not downloaded" in str(err.value) and "pistachio models --params" in err.value.fix
    assert hub.requests == []


def test_variant_selection_keeps_other_weights_only_where_no_variant_exists():
    files = ["model_index.json", "unet/w.safetensors", "unet/w.fp16.safetensors", "vae/w.safetensors", "unet/w.bin",
             "text_encoder/model.fp16.safetensors", "text_encoder/config.json"]
    model = HubModel("m", "o/n", "0" * 40, (), ("*.bin",), "fp16")
    assert select_files(files, model) == ["model_index.json", "unet/w.fp16.safetensors", "vae/w.safetensors",
                                          "text_encoder/model.fp16.safetensors", "text_encoder/config.json"]


@pytest.mark.parametrize("bad, words", [({"revision": "SET"}, "40-hex commit"), ({"revision": "main"}, "40-hex commit"),
                                        ({"repo": "../x"}, "owner/name"), ({"variant": "fp 16"}, "variant"),
                                        ({"allow": ["*"]}, "unknown key"), ({"allow_patterns": "*.json"}, None)])
def test_hub_entries_are_validated_naming_the_entry(tmp_path, bad, words):
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"hub": [{"name": "base", "repo": "org/model", "revision": "a" * 40, **bad}]}))
    if words is None:  # a single pattern is taken as a list of one
        assert load_hub_manifest(path)[0].allow_patterns == ("*.json",)
        return
    with pytest.raises(InputDataError) as err:
        load_hub_manifest(path)
    assert "hub[0] (base)" in str(err.value) and words in str(err.value)


def test_pod_manifest_pins_real_commits_and_refuses_the_unpinned_captioner():
    raw = yaml.safe_load((repo_root() / "params" / "models-pod.yaml").read_text())["hub"]
    pinned = {e["repo"]: e["revision"] for e in raw if e["revision"] != "SET"}
    assert set(pinned) == {"stabilityai/stable-diffusion-xl-base-1.0", "openai/clip-vit-large-patch14", "facebook/dinov2-base"}
    with pytest.raises(InputDataError, match=r"hub\[1\] \(Florence-2 large captioner\).*40-hex") as err:
        load_hub_manifest(repo_root() / "params" / "models-pod.yaml")
    assert "florence-community/Florence-2-large/commits/main" in err.value.fix


def test_a_revision_the_hub_does_not_have_fails_its_row_with_the_fix(hub, tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"hub": [{"name": "clip", "repo": "tiny/clip", "revision": "b" * 40}]}))
    row = ensure_models(str(path), tmp_path / "m").iloc[0]
    assert row["status"] == "failed" and "tiny/clip@bbbbbbbbbbbb" in row["detail"] and "not a commit" in row["detail"]


def test_a_hub_that_never_answers_fails_within_the_timeout(tmp_path, monkeypatch):
    import socket
    import time

    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
        path = tmp_path / "m.yaml"
        path.write_text(yaml.safe_dump({"hub": [{"name": "clip", "repo": "tiny/clip", "revision": "c" * 40}]}))
        start = time.perf_counter()
        row = ensure_models(str(path), tmp_path / "m", timeout=0.5).iloc[0]
    assert row["status"] == "failed" and "Timeout" in row["detail"] and time.perf_counter() - start < 10
