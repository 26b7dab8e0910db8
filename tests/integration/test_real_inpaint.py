"""Uploads and the 05 inpainting ComfyUI route against the real ComfyUI.

The real inpaint graph needs an SDXL checkpoint, so it cannot produce pixels here: with a fake
checkpoint file the test proves the uploads, the pre-submit check and POST /prompt accept the
route's own graph, and that the run then ends in the real server's clean execution_error.
"""

from __future__ import annotations


import numpy as np
import pytest
from PIL import Image, ImageDraw

from pistachio_nb.comfy.client import ComfyClient, ImageRef
from pistachio_nb.comfy.errors import ComfyError, ExecutionFailedError, WorkflowError
from pistachio_nb.comfy.workflow import check_workflow
from pistachio_nb.inpainting import prepare
from pistachio_nb.inpainting import InpaintingParams
from pistachio_nb.inpainting.comfy_route import alpha_mask, build_graph, comfy_inpaint, png_bytes, upload_masked
from pistachio_nb.inpainting.paste import plan_crop

pytestmark = pytest.mark.comfyui_real


def picture(path, size=(96, 80)):
    image = Image.new("RGB", size, (90, 140, 200))
    ImageDraw.Draw(image).ellipse((30, 10, 66, 46), fill=(240, 200, 160))
    image.save(path)
    return path


def inpaint_params(tmp_path, url: str) -> InpaintingParams:
    return InpaintingParams.validate_values({
        "workspace": str(tmp_path / "ws"), "image": str(picture(tmp_path / "scene.png")), "prompt": "pstchio character",
        "negative_prompt": "blurry", "mask_regions": [{"shape": "ellipse", "box": [0.3, 0.1, 0.7, 0.5], "units": "relative"}],
        "mask_file": "", "resize_mask": False, "mask_grow": 4, "mask_feather": 8, "model": "tiny:sdxl", "lora": "none",
        "lora_scale": 0.8, "strength": 0.75, "steps": 2, "guidance_scale": 5.0, "seed": 7, "only_masked": True,
        "crop_padding": 16, "sweep_strengths": [1.0], "sweep_lora_scales": [0.0], "comfy_url": url,
        "comfy_checkpoint": "tiny-sdxl.safetensors", "comfy_lora": "", "comfy_timeout": 60.0})


def test_upload_image_into_a_subfolder_and_mask_into_its_alpha(real_comfy):
    mask = Image.new("L", (32, 32), 0)
    ImageDraw.Draw(mask).rectangle((8, 8, 23, 23), fill=255)
    with ComfyClient(real_comfy.url) as client:
        ref = client.upload_image(png_bytes(Image.new("RGB", (32, 32), "red")), "up.png", subfolder="pistachio")
        assert (ref.filename, ref.subfolder) == ("up.png", "pistachio")
        masked = upload_masked(client, ref, mask, "up_masked.png")
        listed = client.object_info("LoadImage")["LoadImage"]["input"]["required"]["image"][0]
    saved = real_comfy.base_dir / "input" / "pistachio" / "up_masked.png"
    alpha = np.asarray(Image.open(saved).getchannel("A"))
    assert np.array_equal(alpha == 0, np.asarray(mask) > 0)  # transparent = repaint
    assert masked.subfolder == "pistachio"
    assert "pistachio/up_masked.png" not in listed  # the real listing has top-level files only


def test_mask_upload_without_its_original_is_caught(real_comfy):
    with ComfyClient(real_comfy.url) as client:
        missing = ImageRef("never_uploaded.png", "pistachio", "input")
        answer = client.upload_mask(png_bytes(alpha_mask(Image.new("L", (8, 8), 255))), "orphan_masked.png", missing)
        assert answer.filename == "orphan_masked.png"  # real ComfyUI answers 200 ...
        assert not (real_comfy.base_dir / "input" / "pistachio" / "orphan_masked.png").exists()  # ... and writes nothing
        with pytest.raises(ComfyError, match="no such file"):
            upload_masked(client, missing, Image.new("L", (8, 8), 255), "orphan_masked.png")


def test_pre_submit_check_accepts_subfolder_images_and_refuses_missing_top_level(real_comfy, model_file, tmp_path):
    model_file("checkpoints", "tiny-sdxl.safetensors")
    p = inpaint_params(tmp_path, real_comfy.url)
    with ComfyClient(real_comfy.url) as client:
        info = client.object_info()
        check_workflow(build_graph(p, "pistachio/anything.png", "pistachio/x"), info)  # the server checks the file
        with pytest.raises(WorkflowError, match="Invalid image file: nowhere.png"):
            check_workflow(build_graph(p, "nowhere.png", "pistachio/x"), info)


def test_inpaint_route_is_accepted_and_fails_cleanly_on_the_fake_checkpoint(real_comfy, model_file, tmp_path):
    model_file("checkpoints", "tiny-sdxl.safetensors")
    p = inpaint_params(tmp_path, real_comfy.url)
    job = prepare(p)
    crop = plan_crop(job.masks.soft, True, p.crop_padding, 64, 8)
    with pytest.raises(ExecutionFailedError) as err:  # POST /prompt accepted: a 400 would be PromptRejectedError
        comfy_inpaint(p, job, crop)
    assert err.value.data["node_type"] == "CheckpointLoaderSimple", str(err.value)
    uploaded = sorted((real_comfy.base_dir / "input" / "pistachio").glob("pistachio_inpaint_*_masked.png"))
    assert len(uploaded) == 1
    with Image.open(uploaded[0]) as image:
        assert image.size == crop.work_size and image.mode == "RGBA"
        alpha = np.asarray(image.getchannel("A"))
    model_mask = np.asarray(job.masks.hard.crop(crop.box).resize(crop.work_size, Image.NEAREST))
    assert np.array_equal(alpha == 0, model_mask > 0)
    entry = ComfyClient(real_comfy.url).history(err.value.prompt_id)
    load = next(n for n in entry["prompt"][2].values() if n["class_type"] == "LoadImage")
    assert load["inputs"]["image"] == f"pistachio/{uploaded[0].name}"
