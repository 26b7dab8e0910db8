"""08's video batch: prompts file -> clips through the ComfyUI imitation and the tiny local Wan, resumable."""

import json

import numpy as np
import pytest
from PIL import Image

from pistachio_nb.errors import InputDataError, ParamsError
from pistachio_nb.video import VideoParams, run_video
from pistachio_nb.video.outputs import decode
from pistachio_testkit.comfy_exec import Behaviour
from pistachio_testkit.comfy_server import ComfyTestServer

WAN_FILES = {"diffusion_models": ["wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors",
                                  "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors"],
             "text_encoders": ["umt5_xxl_fp8_e4m3fn_scaled.safetensors"], "vae": ["wan_2.1_vae.safetensors"]}
VALUES = dict(plan_gpu_gb=80, plan_model="i2v-A14B", plan_precision="fp8", plan_frames=81, plan_width=1280,
              plan_height=720, batch_name="clips", workflow="wan22_i2v_14b", model="tiny:wan_i2v", negative="blurry",
              base_seed=0, length=9, width=32, height=48, fps=8, steps=2, cfg=3.5, jobs_per_server=1, retries=2,
              backoff_seconds=0.1, job_timeout_seconds=60, request_timeout_seconds=10)  # fmt: skip


def write_prompts(tmp_path, rows: str, name: str = "video.csv") -> str:
    still = np.random.default_rng(0).integers(0, 255, (96, 64, 3), dtype=np.uint8)
    Image.fromarray(still).save(tmp_path / "still.png")
    (tmp_path / name).write_text("image,prompt,seed,length\n" + rows)
    return str(tmp_path / name)


def params(tmp_path, backends, servers=(), **over):
    prompts = write_prompts(tmp_path, 'still.png,"she smiles, hair in the wind",1,\nstill.png,she blinks slowly,2,5\n')
    values = {**VALUES, "workspace": str(tmp_path / "ws"), "prompts_file": prompts, "backends": backends,
              "servers": list(servers), **over}
    return VideoParams.validate_values(values)


def check_clip(folder, row):
    """A saved clip: the mp4's frames and tags, the webp preview, the contact sheet."""
    mp4 = folder / "clips" / row["files"][0]
    frames, tags, fps = decode(mp4.read_bytes())
    assert frames.shape == (row["length"], row["height"], row["width"], 3) and fps == row["fps"]
    assert json.loads(tags["comment"])["seed"] == row["seed"] and tags["title"] == row["prompt"]
    with Image.open(mp4.with_suffix(".webp")) as webp:
        assert webp.n_frames == row["length"]
    with Image.open(mp4.with_name(f"{mp4.stem}_sheet.png")) as sheet:
        assert sheet.width > sheet.height
    return tags


def test_clips_through_the_imitation_and_locally_then_a_rerun_skips_them(tmp_path):
    with ComfyTestServer(models=WAN_FILES) as srv:
        p = params(tmp_path, ["comfyui", "local"], [srv.url])
        result = run_video(p)
        assert result.clips["state"].tolist() == ["done"] * 4
        assert result.clips["length"].tolist() == [9, 5, 9, 5]
        for row in result.manifest.latest.values():
            tags = check_clip(result.folder, row)
            assert ("prompt" in tags) == (row["backend"] == "comfyui")  # ComfyUI's own workflow tag survives the retag
        uploaded = [f.name for f in (srv.root / "input").iterdir()]
        assert len(uploaded) == 1 and uploaded[0].startswith("pistachio_start_")  # one still, one upload name
        again = run_video(p)
    assert again.summary.loc["skipped", "jobs"] == 4 and again.summary.loc["done", "jobs"] == 0
    assert len(result.sheets()) == 4 and all(s.is_file() for s in result.sheets())


def test_a_batch_image_is_a_start_image_and_a_changed_still_is_a_new_job(tmp_path):
    from pistachio_nb.batch.manifest import Manifest

    batch = tmp_path / "ws" / "batches" / "demo"
    (batch / "images").mkdir(parents=True)
    Image.new("RGB", (64, 96), "teal").save(batch / "images" / "abc_0.png")
    Manifest(batch / "manifest.jsonl").record("abc", state="done", files=["abc_0.png"])
    with ComfyTestServer(models=WAN_FILES, behaviour=Behaviour(fail_next=1)) as srv:
        p = params(tmp_path, ["comfyui"], [srv.url], prompts_file=write_prompts(tmp_path, "batch:demo,she waves,3,\n", "own.csv"))
        first = run_video(p)
        assert first.clips["state"].tolist() == ["failed"]  # an execution error is not retried
        Image.new("RGB", (64, 96), "orange").save(batch / "images" / "abc_0.png")
        second = run_video(p)
    assert second.clips["state"].tolist() == ["done"] and second.job_ids != first.job_ids


def test_bad_rows_and_params_are_named(tmp_path):
    p = params(tmp_path, ["local"], prompts_file=write_prompts(tmp_path, "still.png,y,1,8\nstill.png,y,1,9,extra\n", "bad.csv"))
    with pytest.raises(InputDataError, match=r"(?s)line/item 2.*4k\+1.*line/item 3"):
        run_video(p)  # every bad row at once: a length that is not 4k+1, an unnamed extra column
    p = params(tmp_path, ["local"], prompts_file=write_prompts(tmp_path, "missing.png,x,1,\nbatch:none,z,,\n", "gone.csv"))
    with pytest.raises(InputDataError) as err:
        run_video(p)
    assert "missing.png" in str(err.value) and "no batch 'none'" in str(err.value)
    with pytest.raises(ParamsError, match="length"):
        params(tmp_path, ["local"], length=8)
    with pytest.raises(ParamsError, match="servers is empty"):
        params(tmp_path, ["comfyui"])


def check_demo_outputs(ws, rendered):
    """What the demo run of 08_video must have written (called from tests/test_notebooks.py)."""
    from pistachio_nb.batch.manifest import Manifest

    folder = ws / "videos" / "demo"
    latest = Manifest(folder / "manifest.jsonl").latest
    assert latest and {r["state"] for r in latest.values()} == {"done"}
    assert {r["backend"] for r in latest.values()} == {"local", "comfyui"}
    for row in latest.values():
        check_clip(folder, row)
    assert "does not fit" in rendered and "keep the SDXL stack loaded" in rendered  # the table; the 80 GB verdict
    assert "videos/demo/clips/" in rendered and not any(f"{ws}/{sub}" in rendered for sub in ("videos", "batches"))  # relative paths
    assert "VideoParams(" not in rendered and "['keep" not in rendered  # params table, swap steps printed
