"""Bindings files: strict loading, the guesser on user-style graphs (SDXL, InstantID), validation, the pull scaffold."""

import json
import shutil

import pytest

from pistachio_nb.comfy import check_workflow, fill, load_workflow
from pistachio_nb.comfy.bindings import BindingsError, check_bindings, load_bindings, parse_bindings, resolve_node
from pistachio_nb.comfy.bindings_guess import guess_bindings, scaffold_text, write_scaffold
from pistachio_nb.comfy.workflow import workflow_bindings
from pistachio_nb.workflow_convert import pull_workflows
from pistachio_nb.yaml_load import load_strict
from pistachio_testkit.comfy_nodes import object_info
from pistachio_testkit.comfy_server import ComfyTestServer
from tests.conftest import repo_root

DATA = repo_root() / "tests" / "data"
SDXL, INSTANTID = DATA / "sdxl_two_loras.json", DATA / "instantid_faceid.json"
MODELS = {"checkpoints": ["sd_xl_base_1.0.safetensors"], "loras": ["character.safetensors", "detail.safetensors",
                                                                    "pistachio_character.safetensors"]}
CORE = object_info(MODELS, ["face.png"])
CATALOG = json.loads((DATA / "instantid_object_info.json").read_text())  # the custom nodes of an InstantID pod
POD = {**CORE, **CATALOG}
BATCH_FIELDS = ["prompt", "negative", "seed", "steps", "cfg", "width", "height", "checkpoint", "lora", "lora_strength",
                "filename_prefix"]


def places(bindings, graph, fields=None):
    """{field: {(node id, input), ...}}: where each field lands in the graph."""
    return {f: {(resolve_node(graph, b.node)[0], name) for b in bindings.of(f) for name in b.inputs}
            for f in bindings.fields if fields is None or f in fields}


def scaffolded(graph, guess):
    """The scaffold a pull would write, read back as bindings (it must be a valid bindings file)."""
    return parse_bindings(load_strict(scaffold_text(graph, "wf.json", guess)), "scaffold")


def bad(text, tmp_path):
    path = tmp_path / "x.bindings.yaml"
    path.write_text(text)
    with pytest.raises(BindingsError) as err:
        load_bindings(path)
    assert str(path) in str(err.value)
    return str(err.value)


def test_loading_is_strict_and_names_the_file_and_field(tmp_path):
    assert "unknown field 'sed'" in bad("sed: {node: Sampler, input: seed}\n", tmp_path)
    assert "bind LoRAs under `loras:`" in bad("lora: {node: L, input: lora_name}\n", tmp_path)
    assert "field 'seed': missing ['input']" in bad("seed: {node: Sampler}\n", tmp_path)
    assert "field 'seed': unknown key(s) ['value']" in bad("seed: {node: S, input: seed, value: 3}\n", tmp_path)
    assert "field 'prompt'[1].input: expected an input name" in bad(
        "prompt:\n  - {node: P, input: text}\n  - {node: Q, input: []}\n", tmp_path)
    assert "duplicate key 'seed'" in bad("seed: {node: A, input: seed}\nseed: {node: B, input: seed}\n", tmp_path)
    lora = "{node: %s, name_input: lora_name, strength_inputs: [strength_model]%s}"
    assert "2 loaders say `character: true`" in bad(
        f"loras:\n  - {lora % ('A', ', character: true')}\n  - {lora % ('B', ', character: true')}\n", tmp_path)
    assert "loras[0]: `strength` must be a number" in bad(f"loras:\n  - {lora % ('A', ', strength: high')}\n", tmp_path)
    (tmp_path / "lonely.json").write_text("{}")
    with pytest.raises(BindingsError, match="bindings file not found: .*lonely.bindings.yaml"):
        workflow_bindings(tmp_path / "lonely.json")


@pytest.mark.parametrize("template", ["txt2img_lora", "inpaint_lora"])
def test_the_guesser_agrees_with_each_templates_bindings_file(template):
    graph, bindings = load_workflow(template), workflow_bindings(template)
    guess = guess_bindings(graph, CORE)
    assert not guess.ambiguous
    assert places(scaffolded(graph, guess), graph, bindings.fields) == places(bindings, graph)


def test_sdxl_graph_guess_binds_text_g_text_l_sizes_advanced_sampler_and_the_character_lora():
    graph = load_workflow(SDXL)
    guess = guess_bindings(graph, CORE)
    assert not guess.ambiguous and guess.unbound == ["denoise", "image", "mask"]
    got = places(scaffolded(graph, guess), graph)
    assert got["prompt"] == {("20", "text_g"), ("20", "text_l")} and got["negative"] == {("21", "text_g"), ("21", "text_l")}
    assert got["seed"] == {("30", "noise_seed")} and got["steps"] == {("30", "steps")} and got["cfg"] == {("30", "cfg")}
    assert got["width"] == {("5", "width"), ("20", "width"), ("20", "target_width"), ("21", "width"), ("21", "target_width")}
    assert got["height"] == {("5", "height"), ("20", "height"), ("20", "target_height"), ("21", "height"),
                             ("21", "target_height")}
    assert got["lora"] == {("10", "lora_name")} and got["lora_strength"] == {("10", "strength_model"), ("10", "strength_clip")}
    assert [ld.node for ld in guess.loaders] == ["10", "11"] and guess.characters == ["10"]
    assert places(load_bindings(DATA / "sdxl_two_loras.bindings.yaml"), graph, got) == got  # the file a user checked


def test_two_nodes_that_fit_are_reported_as_ambiguous():
    graph = load_workflow(SDXL)
    graph["31"] = {**graph["30"], "_meta": {"title": "Refiner"}, "inputs": {**graph["30"]["inputs"], "noise_seed": 9}}
    graph["8"]["inputs"]["samples"] = ["31", 0]
    for nid in ("10", "11"):  # neither loader says which is the character
        graph[nid] = {**graph[nid], "_meta": {"title": f"LoRA {nid}"}, "inputs": {**graph[nid]["inputs"], "lora_name": f"l{nid}.safetensors"}}
    guess = guess_bindings(graph, CORE)
    assert guess.ambiguous == ["seed", "steps", "cfg", "lora"]
    text = scaffold_text(graph, "sdxl_refiner.json", guess)
    assert '#   AMBIGUOUS: 2 nodes fit: 30 KSamplerAdvanced "KSampler (Advanced)"; 31 KSamplerAdvanced "Refiner"' in text
    assert "which loader is the character LoRA? 2 fit" in text
    with pytest.raises(BindingsError, match="cannot tell where seed go"):
        fill(graph, seed=1)
    assert fill(graph, prompt="ok")["20"]["inputs"]["text_g"] == "ok"  # unambiguous fields still fill


def test_instantid_graph_guess_follows_the_prompt_through_apply_instantid_and_finds_the_face_picture():
    graph = load_workflow(INSTANTID)
    for info in (POD, None):  # with the pod's node catalog, and from the graph alone
        guess = guess_bindings(graph, info)
        assert not guess.ambiguous
        got = places(scaffolded(graph, guess), graph)
        assert got["prompt"] == {("3", "text")} and got["negative"] == {("4", "text")}  # same title: told apart by wiring
        assert got["image"] == {("5", "image")} and got["seed"] == {("13", "seed")} and got["lora"] == {("2", "lora_name")}
    graph["16"] = {"class_type": "LoadImage", "inputs": {"image": "pose.png"}, "_meta": {"title": "Pose"}}
    graph["11"]["inputs"]["image_kps"] = ["16", 0]
    assert "image" in guess_bindings(graph, POD).ambiguous


def test_validation_names_every_unbound_ambiguous_and_dangling_field(tmp_path):
    graph = load_workflow(INSTANTID)
    path = tmp_path / "mine.bindings.yaml"
    path.write_text("prompt: {node: CLIP Text Encode (Prompt), input: text}\n"  # two nodes have that title
                    "negative: {node: Negative prompt, input: text}\n"  # no such node
                    "steps: {node: KSampler, input: step}\n"  # no such input on KSampler
                    "image: {node: Apply InstantID, input: image}\n"  # a link, not a file name
                    "cfg: {node: IPAdapter FaceID, input: weight}\n"
                    "loras:\n  - {node: Load LoRA, name_input: lora_name, strength_inputs: strength_model, character: true}\n")
    bindings = load_bindings(path)
    with pytest.raises(BindingsError) as err:
        check_bindings(bindings, graph, BATCH_FIELDS + ["image"], POD, where="the pod's ComfyUI")
    text = str(err.value)
    assert f"{path} does not fit the pod's ComfyUI: 9 problem(s)" in text
    for line in ["seed: unbound", "width: unbound", "height: unbound", "checkpoint: unbound", "filename_prefix: unbound",
                 "prompt: ambiguous: nodes 3, 4 are all called 'CLIP Text Encode (Prompt)'",
                 "negative: node 'Negative prompt' is not in the workflow",
                 "steps: node 'KSampler' (id 13) (KSampler) has no input 'step' on this server",
                 "image: node 'Apply InstantID' (id 11) (ApplyInstantID) input 'image' is a IMAGE connection, not a value"]:
        assert line in text
    with pytest.raises(BindingsError, match="cfg: node 'IPAdapter FaceID' .* is a IPAdapterFaceID, which this server does not have"):
        check_bindings(bindings, graph, ["cfg"], CORE)  # a ComfyUI without the custom node pack


def test_instantid_bindings_fill_the_right_inputs_and_the_graph_passes_the_pods_catalog():
    graph, bindings = load_workflow(INSTANTID), workflow_bindings(INSTANTID)
    values = dict(prompt="pstchio woman", negative="ugly", seed=5, steps=4, cfg=3.0, width=832, height=1216,
                  checkpoint="sd_xl_base_1.0.safetensors", lora="character.safetensors", lora_strength=0.7,
                  filename_prefix="pistachio/x", image="face.png")
    check_bindings(bindings, graph, list(values), POD)
    g = fill(graph, bindings, **values)
    check_workflow(g, POD)
    assert (g["3"]["inputs"]["text"], g["4"]["inputs"]["text"], g["13"]["inputs"]["seed"]) == ("pstchio woman", "ugly", 5)
    assert (g["12"]["inputs"]["width"], g["12"]["inputs"]["height"], g["5"]["inputs"]["image"]) == (832, 1216, "face.png")
    assert g["2"]["inputs"]["strength_clip"] == 0.7 and g["9"]["inputs"]["lora_strength"] == 0.6  # IPAdapter's own kept


def test_scaffold_is_written_beside_and_never_overwritten(tmp_path):
    wf = tmp_path / "mine.json"
    shutil.copyfile(SDXL, wf)
    path, guess = write_scaffold(wf, CORE)
    assert path == tmp_path / "mine.bindings.yaml" and guess is not None
    assert places(load_bindings(path), load_workflow(wf))["seed"] == {("30", "noise_seed")}
    path.write_text("seed: {node: KSampler (Advanced), input: noise_seed}\n")  # the user's edit
    assert write_scaffold(wf, CORE) == (path, None) and path.read_text().startswith("seed:")


def test_pull_writes_a_scaffold_beside_each_new_workflow_and_checks_kept_ones(tmp_path):
    root = tmp_path / "comfy"
    with ComfyTestServer(root=root, models=MODELS, workflows=False) as srv:
        (root / "user" / "default" / "workflows" / "portrait.json").write_bytes(SDXL.read_bytes())
        first = pull_workflows(srv.url, tmp_path / "wf", timeout=5).set_index("workflow")
        scaffold = tmp_path / "wf" / "api" / "portrait.bindings.yaml"
        assert first.loc["portrait.json", "bindings"] == "new scaffold: check it (not bound: denoise, image, mask)"
        assert first.loc["portrait.json", "bindings_file"] == str(scaffold)
        assert "lora" in places(load_bindings(scaffold), load_workflow(SDXL))
        scaffold.write_text("seed: {node: Sampler, input: noise_seed}\n")  # a title the workflow does not have
        again = pull_workflows(srv.url, tmp_path / "wf", timeout=5).set_index("workflow")
    assert again.loc["portrait.json", "bindings"] == "kept, 1 problem(s): seed: node 'Sampler' is not in the workflow " \
                                                     "(no node with that id or title)"


def test_cli_pull_says_to_check_new_scaffolds(tmp_path, capsys):
    from pistachio_nb.cli import main

    root = tmp_path / "comfy"
    with ComfyTestServer(root=root, models=MODELS, workflows=False) as srv:
        (root / "user" / "default" / "workflows" / "portrait.json").write_bytes(INSTANTID.read_bytes())
        args = ["workflows", "pull", "--params", str(repo_root() / "params" / "demo.yaml"), "--set",
                f"workspace={tmp_path / 'ws'}", "--set", f"comfy_url={srv.url}", "--dest", str(tmp_path / "wf")]
        assert main(args) == 0
        assert "check them, above all AMBIGUOUS lines" in capsys.readouterr().out
        assert main(args) == 0 and "AMBIGUOUS" not in capsys.readouterr().out  # kept: nothing new to check
    assert places(load_bindings(tmp_path / "wf" / "api" / "portrait.bindings.yaml"), load_workflow(INSTANTID))["image"] == \
        {("5", "image")}


def test_with_the_servers_catalog_only_upload_inputs_count_as_the_input_picture():
    graph = load_workflow(INSTANTID)
    graph["16"] = {"class_type": "ImageFromPath", "inputs": {"image": "/data/style.png"}, "_meta": {"title": "Style"}}
    info = {**POD, "ImageFromPath": {"input": {"required": {"image": ["STRING", {}]}}, "output": ["IMAGE"]}}
    assert [opt[0].node for opt in guess_bindings(graph, info).options["image"]] == ["5"]
    assert [opt[0].node for opt in guess_bindings(graph).options["image"]] == ["5", "16"]  # graph alone: both fit
