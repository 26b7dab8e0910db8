"""UI-format -> API-format conversion on a real UI-saved workflow file, and pulling workflows from a ComfyUI server."""

from __future__ import annotations

import copy
import json

import pytest
import requests

from pistachio_nb.paths import repo_root
from pistachio_nb.workflow_convert import (
    WorkflowFormatError, pull_workflows, ui_to_api, widget_inputs, workflow_node_classes,
)
from pistachio_testkit.comfy_nodes import object_info as catalog
from pistachio_testkit.comfy_server import ComfyTestServer

UI_FILE = repo_root() / "tests" / "data" / "ui_workflow_txt2img_lora.json"
MODELS = {"checkpoints": ["sd_xl_base_1.0.safetensors"],
          "loras": ["pistachio_character.safetensors", "detail_tweaker_xl.safetensors"]}


@pytest.fixture
def ui():
    return json.loads(UI_FILE.read_text(encoding="utf-8"))


@pytest.fixture
def info():
    return catalog(MODELS, ["pistachio_ref.png"])


def test_full_conversion_of_the_ui_file(ui, info):
    api = ui_to_api(ui, info)
    # Note, Reroute and Primitive are frontend-only; PreviewImage is muted; LoRA 15 is bypassed.
    assert sorted(api, key=int) == ["3", "4", "5", "6", "7", "8", "9", "10", "17"]
    assert api["3"] == {"class_type": "KSampler", "_meta": {"title": "KSampler"}, "inputs": {
        "seed": 424242, "steps": 30, "cfg": 6.5, "sampler_name": "dpmpp_2m", "scheduler": "karras", "denoise": 1,
        "model": ["10", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}}
    assert api["8"]["inputs"] == {"samples": ["3", 0], "vae": ["4", 2]}  # through the Reroute
    assert api["6"]["inputs"] == {"text": "photo of pstch woman, pistachio green jacket, city street at dusk, 35mm",
                                  "clip": ["10", 1]}  # through the bypassed LoRA
    assert api["10"]["inputs"] == {"lora_name": "pistachio_character.safetensors", "strength_model": 0.8,
                                   "strength_clip": 0.9, "model": ["4", 0], "clip": ["4", 1]}
    assert api["10"]["_meta"]["title"] == "Character LoRA" and api["4"]["_meta"]["title"] == "Load Checkpoint"
    assert api["17"]["inputs"] == {"image": "pistachio_ref.png"}  # the upload button's "image" value is skipped
    assert api["9"]["inputs"] == {"filename_prefix": "pistachio", "images": ["8", 0]}


def test_primitive_node_value_feeds_the_linked_widget(ui, info):
    primitive = next(n for n in ui["nodes"] if n["type"] == "PrimitiveNode")
    primitive["widgets_values"][0] = 7
    assert ui_to_api(ui, info)["3"]["inputs"]["seed"] == 7


def test_enabling_the_bypassed_lora_puts_it_in_the_chain(ui, info):
    next(n for n in ui["nodes"] if n["id"] == 15)["mode"] = 0
    api = ui_to_api(ui, info)
    assert api["3"]["inputs"]["model"] == ["15", 0] and api["7"]["inputs"]["clip"] == ["15", 1]
    assert api["15"]["inputs"]["model"] == ["10", 0]


def test_muting_a_source_drops_the_inputs_it_fed(ui, info):
    next(n for n in ui["nodes"] if n["id"] == 5)["mode"] = 2
    api = ui_to_api(ui, info)
    assert "5" not in api and "latent_image" not in api["3"]["inputs"]


def test_link_objects_of_the_newer_schema_give_the_same_result(ui, info):
    newer = copy.deepcopy(ui)
    newer["links"] = [dict(zip(["id", "origin_id", "origin_slot", "target_id", "target_slot", "type"], link))
                      for link in ui["links"]]
    assert ui_to_api(newer, info) == ui_to_api(ui, info)


def test_converted_workflow_is_accepted_by_prompt_endpoint(ui, tmp_path):
    with ComfyTestServer(root=tmp_path, models=MODELS) as srv:
        (tmp_path / "input" / "pistachio_ref.png").write_bytes(b"")
        api = ui_to_api(ui, requests.get(f"{srv.url}/object_info", timeout=5).json())
        reply = requests.post(f"{srv.url}/prompt", json={"prompt": api}, timeout=5)
    assert reply.status_code == 200, reply.text
    assert reply.json()["node_errors"] == {}


def test_unknown_node_class_names_node_and_class(ui, info):
    del info["LoraLoader"]
    with pytest.raises(WorkflowFormatError) as err:
        ui_to_api(ui, info)
    assert "node 10" in str(err.value) and "'LoraLoader'" in str(err.value) and "custom node" in str(err.value)


def test_widgets_newer_than_the_saved_workflow_get_their_defaults(ui, info):
    next(n for n in ui["nodes"] if n["id"] == 5)["widgets_values"] = [1024]  # saved before height/batch existed
    assert ui_to_api(ui, info)["5"]["inputs"] == {"width": 1024, "height": 512, "batch_size": 1}


def test_too_few_widget_values_without_a_default_is_a_clear_error(ui, info):
    next(n for n in ui["nodes"] if n["id"] == 4)["widgets_values"] = []
    with pytest.raises(WorkflowFormatError, match=r"node 4 \(CheckpointLoaderSimple\): widgets_values has 0 values"):
        ui_to_api(ui, info)


def test_older_uis_boolean_seed_control_is_skipped_like_the_named_one(ui, info):
    next(n for n in ui["nodes"] if n["id"] == 3)["widgets_values"][1] = True
    assert ui_to_api(ui, info)["3"]["inputs"]["steps"] == 30


def test_subgraphs_are_refused_not_mangled(ui, info):
    ui["definitions"] = {"subgraphs": [{"id": "a1b2c3d4-0000-4000-8000-000000000000", "nodes": []}]}
    ui["nodes"][0]["type"] = "a1b2c3d4-0000-4000-8000-000000000000"
    with pytest.raises(WorkflowFormatError, match="subgraph"):
        ui_to_api(ui, info)


def test_widget_order_follows_input_order_and_skips_sockets(info):
    names = [n for n, _ in widget_inputs(info["KSampler"])]
    assert names == ["seed", "steps", "cfg", "sampler_name", "scheduler", "denoise"]


def test_list_widget_values_are_wrapped_like_the_frontend_does(ui, info):
    info["SaveImage"]["input"]["required"]["filename_prefix"] = ["STRING", {}]
    next(n for n in ui["nodes"] if n["id"] == 9)["widgets_values"] = [["a", "b"]]
    assert ui_to_api(ui, info)["9"]["inputs"]["filename_prefix"] == {"__value__": ["a", "b"]}


def test_pull_saves_ui_copy_and_api_form_and_reports_changes(ui, tmp_path):
    root, dest = tmp_path / "comfy", tmp_path / "repo_workflows"
    with ComfyTestServer(root=root, models=MODELS) as srv:
        saved = root / "user" / "default" / "workflows"
        (saved / "portraits").mkdir()
        (saved / "portraits" / "txt2img lora.json").write_text(json.dumps(ui), encoding="utf-8")
        first = pull_workflows(srv.url, dest, timeout=5).set_index("workflow")
        second = pull_workflows(srv.url, dest, timeout=5).set_index("workflow")
        (dest / "api" / "portraits__txt2img lora.json").write_text("{}")  # the repo copy edited by hand
        third = pull_workflows(srv.url, dest, timeout=5).set_index("workflow")
    row = first.loc["portraits/txt2img lora.json"]
    assert (row.format, row.saved_status, row.api_status, row.nodes) == ("ui", "new", "new", 9)
    assert json.loads((dest / "saved" / "portraits__txt2img lora.json").read_text()) == ui
    api = json.loads((dest / "api" / "portraits__txt2img lora.json").read_text())
    assert api["3"]["class_type"] == "KSampler"
    assert set(second["saved_status"]) == {"unchanged"} and set(second["api_status"]) == {"unchanged"}
    # The server also holds API-format templates: kept as they are.
    assert first.loc["txt2img_lora.json", "format"] == "api"
    assert third.loc["portraits/txt2img lora.json", "api_status"] == "updated"  # the server's version wins; git shows the diff


def test_pull_reports_unconvertible_workflows_without_failing(ui, tmp_path):
    ui["nodes"][0]["type"] = "IPAdapterAdvanced"
    root = tmp_path / "comfy"
    with ComfyTestServer(root=root, models=MODELS) as srv:
        (root / "user" / "default" / "workflows" / "needs_ipadapter.json").write_text(json.dumps(ui), encoding="utf-8")
        table = pull_workflows(srv.url, tmp_path / "out", timeout=5).set_index("workflow")
    row = table.loc["needs_ipadapter.json"]
    assert row.api_status == "not converted" and "IPAdapterAdvanced" in row.detail
    assert (tmp_path / "out" / "saved" / "needs_ipadapter.json").is_file()


def test_node_classes_from_api_workflow_folders(tmp_path, info, ui):
    (tmp_path / "a.json").write_text(json.dumps(ui_to_api(ui, info)), encoding="utf-8")
    (tmp_path / "ui_only.json").write_text(json.dumps({**ui, "nodes": [{"id": 1, "type": "Ignored"}]}), encoding="utf-8")
    found = workflow_node_classes([tmp_path, repo_root() / "pistachio_nb" / "workflows"])
    assert "LoadImage" in found and "LoraLoader" in found and "Ignored" not in found


def test_cli_workflows_pull(ui, tmp_path, capsys):
    from pistachio_nb.cli import main

    root = tmp_path / "comfy"
    with ComfyTestServer(root=root, models=MODELS) as srv:
        (root / "user" / "default" / "workflows" / "mine.json").write_text(json.dumps(ui), encoding="utf-8")
        code = main(["workflows", "pull", "--params", str(repo_root() / "params" / "demo.yaml"),
                     "--set", f"workspace={tmp_path / 'ws'}", "--set", f"comfy_url={srv.url}", "--dest", str(tmp_path / "wf")])
    assert code == 0 and "mine.json" in capsys.readouterr().out
    assert json.loads((tmp_path / "wf" / "api" / "mine.json").read_text())["10"]["class_type"] == "LoraLoader"


def test_pull_from_a_comfyui_with_no_saved_workflows(tmp_path):
    import shutil

    root = tmp_path / "comfy"
    with ComfyTestServer(root=root, models=MODELS) as srv:
        shutil.rmtree(root / "user" / "default" / "workflows")  # a fresh ComfyUI: the folder appears on first save
        table = pull_workflows(srv.url, tmp_path / "wf", timeout=5)
    assert table.empty and list(table.columns)[:3] == ["workflow", "format", "saved_status"]
