"""Workflow templates: fill through their bindings files (titles, not ids), refuse UI format and ambiguity, check."""

import json

import pytest

from pistachio_nb.comfy import WorkflowError, check_workflow, fill, load_workflow
from pistachio_nb.comfy.bindings import BindingsError
from pistachio_nb.comfy.validation import validate_graph
from pistachio_nb.comfy.workflow import bindings_table, bypass, workflow_bindings
from pistachio_testkit.comfy_nodes import object_info

INFO = object_info({"checkpoints": ["base.safetensors"], "loras": ["char.safetensors"]}, [])


def renumbered(graph, offset=40):
    """The same graph with different node ids (as a re-export from the editor would give)."""
    new_id = {old: str(int(old) + offset) for old in graph}

    def relink(v):
        return [new_id[v[0]], v[1]] if isinstance(v, list) else v

    return {new_id[nid]: {**n, "inputs": {k: relink(v) for k, v in n["inputs"].items()}} for nid, n in graph.items()}


TXT2IMG = workflow_bindings("txt2img_lora")


@pytest.mark.parametrize("template", [load_workflow("txt2img_lora"), renumbered(load_workflow("txt2img_lora"))])
@pytest.mark.parametrize("bindings", [TXT2IMG, None], ids=["bindings file", "guessed"])
def test_fill_finds_nodes_through_bindings_whatever_their_ids(template, bindings):
    g = fill(template, bindings, prompt="a cat", negative="blurry", seed=42, steps=7, cfg=4.5, width=832, height=1216,
             checkpoint="base.safetensors", lora="char.safetensors", lora_strength=0.6)
    by_title = {n["_meta"]["title"]: n["inputs"] for n in g.values()}
    assert by_title["Positive prompt"]["text"] == "a cat" and by_title["Negative prompt"]["text"] == "blurry"
    assert (by_title["Sampler"]["seed"], by_title["Sampler"]["steps"], by_title["Sampler"]["cfg"]) == (42, 7, 4.5)
    assert (by_title["Image size"]["width"], by_title["Image size"]["height"]) == (832, 1216)
    assert by_title["Character LoRA"]["strength_model"] == by_title["Character LoRA"]["strength_clip"] == 0.6
    check_workflow(g, INFO)
    assert template != g and "a cat" not in json.dumps(template)  # the template itself is untouched


def test_missing_or_ambiguous_nodes_are_clear_errors():
    g = load_workflow("txt2img_lora")
    no_lora = {k: v for k, v in g.items() if v["class_type"] != "LoraLoader"}
    with pytest.raises(BindingsError, match="lora: node 'Character LoRA' is not in the workflow") as err:
        fill(no_lora, TXT2IMG, lora="char.safetensors", lora_strength=0.5)
    assert "txt2img_lora.bindings.yaml" in str(err.value) and "2 problem(s)" in str(err.value)
    renamed = {k: {**v, "_meta": {"title": "text"}} if v["class_type"] == "CLIPTextEncode" else v for k, v in g.items()}
    with pytest.raises(BindingsError, match="prompt: node 'Positive prompt' is not in the workflow"):
        fill(renamed, TXT2IMG, prompt="x")
    twins = {k: {**v, "_meta": {"title": "Positive prompt"}} if v["class_type"] == "CLIPTextEncode" else v
             for k, v in g.items()}
    with pytest.raises(BindingsError, match="prompt: ambiguous: nodes 3, 4 are all called 'Positive prompt'"):
        fill(twins, TXT2IMG, prompt="x")
    with pytest.raises(BindingsError, match="unknown workflow field"):
        fill(g, TXT2IMG, sampler="euler")
    with pytest.raises(BindingsError, match="image: unbound"):  # txt2img loads no picture
        fill(g, TXT2IMG, image="face.png")


def test_leaving_the_lora_out_rewires_its_consumers_to_its_inputs():
    g = load_workflow("inpaint_lora")
    out = bypass(g, "2")
    assert "2" not in out and out["8"]["inputs"]["model"] == ["1", 0] and out["3"]["inputs"]["clip"] == ["1", 1]
    assert g["8"]["inputs"]["model"] == ["2", 0]  # the input graph is untouched
    with pytest.raises(WorkflowError, match="node 6 input 'pixels' reads its output 0"):
        bypass(g, "5")  # LoadImage has no `pixels` input to pass through


def test_ui_format_and_unknown_names_are_refused(tmp_path):
    ui = tmp_path / "ui.json"
    ui.write_text(json.dumps({"nodes": [], "links": [], "version": 0.4}))
    with pytest.raises(WorkflowError, match="API format"):
        load_workflow(ui)
    with pytest.raises(WorkflowError, match="txt2img_lora"):  # lists the known templates
        load_workflow("no_such_template")


def test_check_names_the_missing_lora_and_the_known_ones():
    g = fill(load_workflow("txt2img_lora"), TXT2IMG, checkpoint="base.safetensors", lora="other.safetensors")
    with pytest.raises(WorkflowError) as err:
        check_workflow(g, INFO, where="txt2img_lora on pod")
    assert "node 2 (LoraLoader)" in str(err.value) and "'other.safetensors' not in ['char.safetensors']" in str(err.value)


def test_validation_catches_wrong_link_types_and_dangling_links():
    g = fill(load_workflow("txt2img_lora"), TXT2IMG, checkpoint="base.safetensors", lora="char.safetensors")
    g["7"]["inputs"]["vae"] = ["1", 0]  # MODEL where a VAE is expected
    g["6"]["inputs"]["positive"] = ["99", 0]
    verdict = validate_graph(g, INFO)
    kinds = {nid: [e["type"] for e in entry["errors"]] for nid, entry in verdict.node_errors.items()}
    assert kinds == {"7": ["return_type_mismatch"], "6": ["bad_linked_input"]}
    assert verdict.error["type"] == "prompt_outputs_failed_validation"


def test_bindings_table_shows_where_each_field_goes():
    table = bindings_table("inpaint_lora")
    rows = {(r.field, r.input): (r.id, r.class_type) for r in table.itertuples()}
    assert rows[("denoise", "denoise")] == ("8", "KSampler") and rows[("image", "image")] == ("5", "LoadImage")
    assert rows[("lora_strength", "strength_clip")] == ("2", "LoraLoader") and len(table) == 12
    assert set(table["set_to"]) == {"the job's value"}
