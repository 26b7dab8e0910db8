"""The tiny Wan2.2 I2V model through the local backend: loads like real weights, seeded, mp4 round trip."""

import json

import numpy as np
import pytest
from PIL import Image

from pistachio_nb.errors import InputDataError, ModelLoadError
from pistachio_nb.video.local import VideoRequest, generate, load_pipeline, make_video, read_mp4
from pistachio_nb.video.tiny import BOUNDARY_RATIO, build_wan_i2v


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    return load_pipeline(build_wan_i2v(tmp_path_factory.mktemp("wan") / "tiny-wan-i2v"))


@pytest.fixture()
def request_(tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (48, 32, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "start.png")
    return VideoRequest(image=str(tmp_path / "start.png"), prompt="a woman smiling", seed=1, frames=9,
                        width=32, height=48, steps=2, max_sequence_length=16)  # fmt: skip


def test_tiny_pipeline_loads_with_two_experts(pipe):
    assert type(pipe).__name__ == "WanImageToVideoPipeline"
    assert pipe.transformer is not None and pipe.transformer_2 is not None
    assert pipe.config.boundary_ratio == BOUNDARY_RATIO
    assert pipe.transformer.config.in_channels == 2 * pipe.vae.config.z_dim + 4


def test_seed_decides_the_video(pipe, request_):
    a = generate(pipe, request_)
    assert a.shape == (9, 48, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, generate(pipe, request_))
    other = generate(pipe, VideoRequest(**{**request_.__dict__, "seed": 2}))
    assert not np.array_equal(a, other)


def test_make_video_writes_mp4_webp_sheet_with_metadata(pipe, request_, tmp_path):
    out = make_video(pipe, request_, tmp_path / "out", "clip")
    frames, tags = read_mp4(out["mp4"])
    assert frames.shape == (9, 48, 32, 3)
    assert json.loads(tags["comment"])["seed"] == 1 and tags["title"] == "a woman smiling"
    sidecar = json.loads(out["sidecar"].read_text())
    assert sidecar["params"]["prompt"] == "a woman smiling" and sidecar["frames"] == 9
    with Image.open(out["webp"]) as webp:
        assert webp.n_frames == 9 and webp.size == (32, 48)
    with Image.open(out["sheet"]) as sheet:
        assert sheet.width > sheet.height
    assert not list((tmp_path / "out").glob(".*.tmp"))  # atomic writes leave no temp files


def test_bad_input_is_named(pipe, request_, tmp_path):
    with pytest.raises(InputDataError, match="frames=8"):
        generate(pipe, VideoRequest(**{**request_.__dict__, "frames": 8}))
    with pytest.raises(InputDataError, match="not found"):
        generate(pipe, VideoRequest(**{**request_.__dict__, "image": str(tmp_path / "missing.png")}))
    with pytest.raises(ModelLoadError, match="model_index.json"):
        load_pipeline(tmp_path)
