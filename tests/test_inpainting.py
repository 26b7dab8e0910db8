"""05_inpainting on the tiny real-architecture SDXL: paste-back guarantee, sidecar reproduction, LoRA, sweep, ComfyUI route."""

import ast
import json
import random

import numpy as np
import papermill as pm
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from pistachio_nb.errors import InputDataError, ModelLoadError
from pistachio_nb.files import read_json, write_json, write_jsonl
from pistachio_nb.inpainting import inpaint, prepare, reproduce
from pistachio_nb.inpainting.comfy_route import comfy_inpaint
from pistachio_nb.inpainting.stage import load_pipeline, resolve_image
from pistachio_nb.inpainting.sweep import sweep
from pistachio_nb.inpainting.views import pixels_changed
from pistachio_nb.lora import resolve_lora
from pistachio_nb.models import load_sdxl_pipeline
from pistachio_nb.inpainting import InpaintingParams
from pistachio_nb.paths import repo_root
from pistachio_testkit.comfy_server import ComfyTestServer
from pistachio_testkit.demo_data import draw_scene

NOTEBOOK = repo_root() / "notebooks" / "05_inpainting.ipynb"


def notebook_defaults() -> dict:
    """The values of the notebook's parameters cell (so the tests also check the cell validates)."""
    return {k: ast.literal_eval(v["default"]) for k, v in pm.inspect_notebook(str(NOTEBOOK)).items()}


@pytest.fixture(scope="module")
def lora_files(tmp_path_factory):
    """One random LoRA on the tiny UNet (peft, non-zero up weights), saved in diffusers and in kohya format (03's exporter)."""
    from diffusers import StableDiffusionXLPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from pistachio_nb.training.export import lora_state_dicts, save_kohya

    pipe = load_sdxl_pipeline("tiny:sdxl", "cpu")
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_k", "to_q", "to_v", "to_out.0"]))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in pipe.unet.named_parameters():
            if "lora_" in name:
                param.normal_(0, 0.5)
    folder = tmp_path_factory.mktemp("lora")
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(pipe.unet))
    StableDiffusionXLPipeline.save_lora_weights(folder, unet_lora_layers=layers, weight_name="character.safetensors")
    kohya = save_kohya(folder / "character-kohya.safetensors", lora_state_dicts(pipe), 4, 4.0, torch.float32, {"network_dim": 4})
    return folder / "character.safetensors", kohya


@pytest.fixture(scope="module")
def lora_file(lora_files):
    return lora_files[0]


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    path = tmp_path_factory.mktemp("pictures") / "scene.png"
    draw_scene(random.Random(5), (96, 80)).save(path)
    return path


@pytest.fixture
def values(tmp_path, picture, lora_file):
    return {**notebook_defaults(), "workspace": str(tmp_path / "ws"), "image": str(picture), "lora": str(lora_file),
            "steps": 4, "comfy_url": ""}


@pytest.fixture(scope="module")
def pipe(picture, lora_file, tmp_path_factory):
    p = InpaintingParams.validate_values({**notebook_defaults(), "workspace": str(tmp_path_factory.mktemp("ws")),
                                          "image": str(picture), "lora": str(lora_file)})
    return load_pipeline(prepare(p).params, "cpu")


def params(values, **changes) -> InpaintingParams:
    return InpaintingParams.validate_values({**values, **changes})


@pytest.mark.parametrize("only_masked", [True, False])
def test_inpaint_changes_only_the_masked_area_and_writes_a_sidecar(values, pipe, only_masked):
    p = params(values, only_masked=only_masked)
    result = inpaint(p, pipe=pipe)
    original = Image.open(p.image).convert("RGB")
    masks = prepare(p).masks
    assert pixels_changed(original, result.image, outside=masks.soft) == 0
    assert pixels_changed(original, result.image) > 0.3 * (np.asarray(masks.hard) > 0).sum()
    saved = Image.open(result.path)
    assert pixels_changed(saved, result.image) == 0
    side = read_json(f"{result.path}.params.json")
    assert side["params"]["strength"] == p.strength and side["params"]["lora"] == values["lora"]
    assert side["crop_box"] == list(result.crop.box) and len(side["input_sha256"]["image"]) == 64
    whole = (0, 0, *original.size)
    assert (result.crop.box == whole) != only_masked


def test_sidecar_reproduces_the_same_pixels_and_the_seed_matters(values, pipe):
    result = inpaint(params(values, seed=7), pipe=pipe)
    again = reproduce(f"{result.path}.params.json", pipe)
    assert pixels_changed(again, Image.open(result.path)) == 0
    other = inpaint(params(values, seed=8), pipe=pipe)
    assert pixels_changed(other.image, result.image) > 0


def test_a_result_made_on_one_thread_reproduces_exactly_on_a_machine_using_two(values, pipe):
    import torch

    from pistachio_nb.inpainting.stage import torch_threads

    with torch_threads(1):
        result = inpaint(params(values, seed=11), pipe=pipe)
    assert read_json(f"{result.path}.params.json")["torch_threads"] == 1
    torch.set_num_threads(2)
    assert pixels_changed(reproduce(f"{result.path}.params.json", pipe), Image.open(result.path)) == 0
    assert torch.get_num_threads() == 2  # restored after the reproduction


def test_sidecar_refuses_a_changed_input_picture(values, pipe, tmp_path):
    copy = tmp_path / "copy.png"
    copy.write_bytes(open(values["image"], "rb").read())
    result = inpaint(params(values, image=str(copy)), pipe=pipe)
    Image.new("RGB", (96, 80), (1, 2, 3)).save(copy)
    with pytest.raises(InputDataError, match="input image changed since"):
        reproduce(f"{result.path}.params.json", pipe)


def test_reruns_reuse_saved_results_and_changes_never_overwrite(values, pipe, tmp_path):
    picture = tmp_path / "picture.png"
    picture.write_bytes(open(values["image"], "rb").read())
    first = inpaint(params(values, image=str(picture)), pipe=pipe)
    again = inpaint(params(values, image=str(picture)))  # no pipeline: the saved result is reused
    assert again.cached and not first.cached and again.path == first.path and again.crop == first.crop
    assert pixels_changed(again.image, first.image) == 0
    assert inpaint(params(values, image=str(picture), sweep_lora_scales=[0.3], comfy_timeout=5.0)).cached
    assert inpaint(params(values, image=str(picture), prompt="pstchio character, red hair"), pipe=pipe).path != first.path
    Image.open(values["image"]).transpose(Image.FLIP_LEFT_RIGHT).save(picture)  # same path, new content
    changed = inpaint(params(values, image=str(picture)), pipe=pipe)
    assert not changed.cached and changed.path != first.path
    assert len(list(first.path.parent.glob("*.png"))) == 3


def test_lora_scale_changes_the_result(values, pipe):
    without = inpaint(params(values, lora_scale=0.0), pipe=pipe).image
    full = inpaint(params(values, lora_scale=1.0), pipe=pipe).image
    assert pixels_changed(without, full) > 0


def test_kohya_lora_from_training_gives_the_same_result_as_diffusers_format(values, lora_files):
    diffusers_file, kohya_file = lora_files
    images = []
    for lora in (diffusers_file, kohya_file):
        p = params(values, lora=str(lora), lora_scale=1.0)
        images.append(np.asarray(inpaint(p, pipe=load_pipeline(prepare(p).params, "cpu")).image, dtype=np.int16))
    assert np.abs(images[0] - images[1]).max() <= 2


def test_sweep_saves_every_cell_the_table_and_the_grid(values, pipe):
    p = params(values)
    fig, table = sweep(pipe, prepare(p), [0.5, 1.0], [0.0, 1.0])
    assert list(table[["strength", "lora_scale"]].itertuples(index=False, name=None)) == [(0.5, 0.0), (0.5, 1.0), (1.0, 0.0), (1.0, 1.0)]
    assert table["seed"].nunique() == 1 and len(fig.axes) == 4
    for rel in table["file"]:
        side = read_json(p.ws.root / f"{rel}.params.json")
        assert (side["params"]["strength"], side["params"]["lora_scale"]) in [(0.5, 0.0), (0.5, 1.0), (1.0, 0.0), (1.0, 1.0)]
    assert (p.ws.inpainting / "sweep_grid.png").stat().st_size > 1000 and (p.ws.inpainting / "sweep.csv").exists()
    assert table["file"].nunique() == 4 and not table["cached"].any()
    _, rerun = sweep(None, prepare(p), [0.5, 1.0], [0.0, 1.0])  # every cell saved: no pipeline needed
    assert rerun["cached"].all() and rerun.drop(columns="cached").equals(table.drop(columns="cached"))


def test_image_from_dataset_and_lora_from_recommendation(values, tmp_path, lora_file):
    p = params(values, image="dataset", lora="recommended")
    with pytest.raises(InputDataError, match="run 01_dataset first"):
        resolve_image(p)
    with pytest.raises(InputDataError, match="no checkpoint recommendation"):
        resolve_lora(p.lora, p.ws.root)
    draw_scene(random.Random(1), (64, 64)).save(p.ws.sub("dataset/train") / "b.png")
    write_jsonl(p.ws.root / "dataset" / "metadata.jsonl", [{"file_name": "train/b.png"}, {"file_name": "train/a.png"}])
    assert resolve_image(p) == p.ws.root / "dataset" / "train" / "a.png"
    write_json(p.ws.comparison / "recommendation.json", {"checkpoint": str(lora_file)})
    assert resolve_lora(p.lora, p.ws.root) == lora_file
    with pytest.raises(ModelLoadError, match="could not load LoRA"):
        load_pipeline(params(values, lora=str(values["image"])))  # a PNG is no LoRA
    alien = tmp_path / "alien.safetensors"  # a LoRA for another architecture: no layer matches
    save_file({"lora_unet_other_net.lora_down.weight": torch.zeros(4, 64), "lora_unet_other_net.lora_up.weight": torch.zeros(64, 4)}, alien)
    with pytest.raises(ModelLoadError, match="use a LoRA trained for this SDXL base model"):
        load_pipeline(params(values, lora=str(alien)))


def test_dedicated_inpainting_checkpoint_with_a_9_channel_unet(values, tmp_path):
    """An SDXL inpainting checkpoint (UNet sees latents + mask + masked picture) runs through the one-call verb."""
    from diffusers import StableDiffusionXLInpaintPipeline, UNet2DConditionModel

    base = load_sdxl_pipeline("tiny:sdxl", "cpu")
    torch.manual_seed(0)
    unet9 = UNet2DConditionModel.from_config({**base.unet.config, "in_channels": 9})
    StableDiffusionXLInpaintPipeline.from_pipe(base, unet=unet9).save_pretrained(tmp_path / "tiny-inpainting")
    assert json.loads((tmp_path / "tiny-inpainting" / "model_index.json").read_text())["_class_name"] == "StableDiffusionXLInpaintPipeline"
    p = params(values, model=str(tmp_path / "tiny-inpainting"), lora="none")
    assert load_pipeline(prepare(p).params, "cpu").unet.config.in_channels == 9
    result = inpaint(p)  # loads the pipeline itself
    assert pixels_changed(Image.open(p.image), result.image, outside=prepare(p).masks.soft) == 0
    assert pixels_changed(Image.open(p.image), result.image) > 0


@pytest.mark.parametrize("comfy_lora", ["character.safetensors", ""])
def test_comfy_route_uploads_picture_and_alpha_mask_and_pastes_back(values, pipe, tmp_path, comfy_lora):
    with ComfyTestServer(root=tmp_path / "comfy") as server:
        p = params(values, comfy_url=server.url, comfy_lora=comfy_lora)
        job = prepare(p)
        crop = inpaint(p, pipe=pipe, job=job).crop
        result = comfy_inpaint(p, job, crop)
        uploaded = sorted((server.root / "input" / "pistachio").glob("*_masked.png"))
        assert len(uploaded) == 1
        alpha = np.asarray(Image.open(uploaded[0]).getchannel("A"))
        red = params(values, comfy_url=server.url, comfy_lora=comfy_lora, prompt="pstchio character, red hair")
        assert comfy_inpaint(red, prepare(red), crop).path != result.path  # another prompt never overwrites
    model_mask = np.asarray(job.masks.hard.crop(crop.box).resize(crop.work_size, Image.NEAREST))
    assert np.array_equal(alpha == 0, model_mask > 0)  # transparent = repaint, as ComfyUI's LoadImage reads it
    assert pixels_changed(job.image, result.image, outside=job.masks.soft) == 0 < pixels_changed(job.image, result.image)
    side = read_json(f"{result.path}.params.json")
    graph = side["comfy"]["workflow"]
    classes = {n["class_type"] for n in graph.values()}
    assert ("LoraLoader" in classes) == bool(comfy_lora)
    load = next(n for n in graph.values() if n["class_type"] == "LoadImage")
    assert load["inputs"]["image"] == f"pistachio/{uploaded[0].name}"
    sampler = next(n for n in graph.values() if n["class_type"] == "KSampler")
    assert (sampler["inputs"]["seed"], sampler["inputs"]["denoise"]) == (p.seed, p.strength)
    assert result.summary.loc[0, "prompt_id"] == side["comfy"]["prompt_id"]


def test_comfy_route_is_skipped_without_url(values, pipe):
    p = params(values, comfy_url="")
    result = comfy_inpaint(p, prepare(p), None)
    assert result.image is None and "skipped" in result.summary.loc[0, "status"]
    assert json.dumps(result.summary.to_dict())  # still a table the notebook can show


def check_demo_outputs(ws, rendered: str) -> None:
    """The 05_inpainting check for tests/test_notebooks.py CHECKS: results, sidecars, sweep grid, ComfyUI result."""
    folder = ws / "inpainting"
    results = sorted(folder.glob("*-seed*.png"))
    assert results, "no inpainting result"
    side = read_json(f"{results[0]}.params.json")
    original = Image.open(side["params"]["image"]).convert("RGB")
    masks = prepare(InpaintingParams.validate_values(side["params"])).masks
    assert pixels_changed(original, Image.open(results[0]), outside=masks.soft) == 0
    import pandas as pd

    sweep_table = pd.read_csv(folder / "sweep.csv")
    assert len(sweep_table) == len(side["params"]["sweep_strengths"]) * len(side["params"]["sweep_lora_scales"])
    assert all((ws / f"{f}.params.json").exists() for f in sweep_table["file"])
    comfy = sorted((folder / "comfy").glob("*.png"))
    assert comfy and read_json(f"{comfy[0]}.params.json")["comfy"]["prompt_id"]
    assert "Traceback" not in rendered and "InpaintingParams(" not in rendered  # params as the table of what differs


def test_demo_output_check_accepts_a_real_run_and_rejects_a_touched_result(values, pipe, tmp_path):
    with ComfyTestServer(root=tmp_path / "comfy") as server:
        p = params(values, comfy_url=server.url, comfy_lora="character.safetensors", sweep_strengths=[1.0], sweep_lora_scales=[0.0, 1.0])
        job = prepare(p)
        result = inpaint(p, pipe=pipe, job=job)
        sweep(pipe, job, p.sweep_strengths, p.sweep_lora_scales)
        comfy_inpaint(p, job, result.crop)
    check_demo_outputs(p.ws.root, "")
    touched = np.array(Image.open(result.path))
    touched[0, 0] = 255 - touched[0, 0]  # a corner pixel, far outside the mask
    Image.fromarray(touched).save(result.path)
    with pytest.raises(AssertionError):
        check_demo_outputs(p.ws.root, "")
