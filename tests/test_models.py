"""Tiny models of the real architectures: built offline, saved, reloaded through the public loaders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pistachio_nb import models, tiny_models
from pistachio_nb.errors import ModelLoadError


def _generate(pipe, seed: int = 0) -> np.ndarray:
    pipe.set_progress_bar_config(disable=True)
    out = pipe(
        "a photo of ohwx woman", height=64, width=64, num_inference_steps=2,
        generator=torch.Generator("cpu").manual_seed(seed), output_type="np",
    )  # fmt: skip
    return out.images


def _image(w: int = 48, h: int = 40) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8))


def test_tiny_sdxl_reloaded_from_disk_generates_same_image_as_in_memory(tmp_path):
    from diffusers import StableDiffusionXLPipeline

    folder = tiny_models.build_tiny("sdxl", tmp_path / "sdxl")
    in_memory = StableDiffusionXLPipeline.from_pretrained(folder)
    reloaded = models.load_sdxl_pipeline(str(folder), device="cpu")
    first, second = _generate(in_memory), _generate(reloaded)
    assert first.shape == (1, 64, 64, 3)
    assert first.std() > 0  # not a blank image
    np.testing.assert_array_equal(first, second)
    assert reloaded.tokenizer.model_max_length == 77
    assert reloaded.unet.config.addition_embed_type == "text_time"


def test_build_is_deterministic_from_the_seed(tmp_path):
    a = tiny_models.build_tiny("dinov2", tmp_path / "a")
    b = tiny_models.build_tiny("dinov2", tmp_path / "b")
    c = tiny_models.build_tiny("dinov2", tmp_path / "c", seed=1)
    read = lambda p: (p / "model.safetensors").read_bytes()  # noqa: E731
    assert read(a) == read(b)
    assert read(a) != read(c)


def test_tiny_tokenizer_keeps_known_words_whole(tmp_path):
    tok = tiny_models.clip_tokenizer(tmp_path)
    ids = tok("a photo of ohwx woman").input_ids
    assert len(ids) == 7  # bos + five whole words + eos
    assert tok.decode(ids, skip_special_tokens=True) == "a photo of ohwx woman"


def test_resolve_tiny_builds_once_and_reuses(tmp_path):
    first = models.ensure_tiny("dinov2", tmp_path)
    stamp = (first / models.MARKER).stat().st_mtime_ns
    second = models.ensure_tiny("dinov2", tmp_path)
    assert first == second == tmp_path / "tiny-dinov2"
    assert (second / models.MARKER).stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == ["tiny-dinov2"]  # no temp folders left


def test_crashed_build_leaves_no_half_model(tmp_path, monkeypatch):
    def crash(dest, workdir):
        (dest / "half-written.bin").write_bytes(b"x")
        raise RuntimeError("power cut")

    monkeypatch.setitem(tiny_models.BUILDERS, "dinov2", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        models.ensure_tiny("dinov2", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_stale_tiny_model_is_rebuilt(tmp_path, monkeypatch):
    folder = models.ensure_tiny("dinov2", tmp_path)
    monkeypatch.setattr(tiny_models, "VERSION", tiny_models.VERSION + 1)
    rebuilt = models.ensure_tiny("dinov2", tmp_path)
    assert models._read_marker(rebuilt)["version"] == tiny_models.VERSION
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]


def test_resolve_model_kinds_of_reference(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    with pytest.raises(ModelLoadError) as err:  # a hub id is only ever its verified snapshot: never downloaded here
        models.resolve_model("stabilityai/stable-diffusion-xl-base-1.0")
    assert "stabilityai/stable-diffusion-xl-base-1.0" in str(err.value) and "empty-hf-home" in str(err.value)
    assert "pistachio models --params" in err.value.fix
    assert models.resolve_model(str(tmp_path)) == str(tmp_path)
    assert models.resolve_model("tiny:sdxl").endswith("outputs/models/tiny-sdxl")


@pytest.mark.parametrize(
    "ref, named",
    [("tiny:nope", "tiny:nope"), ("/no/such/model/folder", "/no/such/model/folder"), ("./missing-model", "missing-model")],
)
def test_bad_reference_raises_clear_model_load_error(ref, named):
    with pytest.raises(ModelLoadError) as err:
        models.load_sdxl_pipeline(ref, device="cpu")
    assert named in str(err.value)
    assert err.value.fix


def test_failed_load_names_ref_and_fix(tmp_path):
    (tmp_path / "model_index.json").write_text("{not json")
    with pytest.raises(ModelLoadError) as err:
        models.load_sdxl_pipeline(str(tmp_path), device="cpu")
    assert str(tmp_path) in str(err.value) and "fix:" in str(err.value)


def test_tiny_captioner_generates_decodable_text():
    model, processor = models.load_captioner("tiny:captioner", device="cpu")
    inputs = processor(images=[_image(), _image(30, 50)], text=["<CAPTION>"] * 2, return_tensors="pt")
    out = model.generate(**inputs, do_sample=False)
    captions = processor.batch_decode(out, skip_special_tokens=True)
    assert len(captions) == 2
    assert all(len(c.split()) >= 4 and c.isascii() for c in captions)


def test_tiny_clip_embeds_text_and_images():
    model, processor = models.load_clip("tiny:clip", device="cpu")
    inputs = processor(text=["a photo of ohwx woman", "red dress"], images=[_image()], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**inputs)
    dim = model.config.projection_dim
    assert out.text_embeds.shape == (2, dim) and out.image_embeds.shape == (1, dim)
    assert out.logits_per_image.shape == (1, 2)


def test_tiny_dinov2_embeds_images():
    model, processor = models.load_dinov2("tiny:dinov2", device="cpu")
    with torch.no_grad():
        out = model(**processor(images=[_image(), _image(64, 32)], return_tensors="pt"))
    assert out.pooler_output.shape == (2, model.config.hidden_size)
    assert not torch.allclose(out.pooler_output[0], out.pooler_output[1])


def test_pick_device_and_dtype():
    assert models.pick_device() in ("cuda", "cpu")
    assert models.pick_dtype("cpu") == torch.float32
