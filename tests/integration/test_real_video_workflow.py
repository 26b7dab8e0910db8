"""The Wan2.2 image-to-video workflow against the real ComfyUI 0.3.64's /prompt and its Wan node definitions.

Missing model files are the only refusal allowed (this bare server has no Wan weights); with stand-in files
in its model folders the same graph is queued. A malformed graph (unknown class, a wrong input name or type)
is refused for what it is, so the two answers can be told apart.
"""

from __future__ import annotations

import io

import pytest
import requests
from PIL import Image

from pistachio_nb.comfy.client import ComfyClient
from pistachio_nb.comfy.workflow import check_workflow, fill, load_workflow, workflow_bindings
from pistachio_nb.video.backends import WAN_MODEL_INPUTS

pytestmark = pytest.mark.comfyui_real
WORKFLOW = "wan22_i2v_14b"


def post(url: str, graph: dict) -> tuple[int, dict]:
    """POST /prompt; a queued prompt is deleted and interrupted at once (its stand-in weights cannot load)."""
    r = requests.post(f"{url}/prompt", json={"prompt": graph, "client_id": "video-test"}, timeout=30)
    answer = r.json()
    if r.status_code == 200:
        requests.post(f"{url}/queue", json={"delete": [answer["prompt_id"]]}, timeout=10)
        requests.post(f"{url}/interrupt", json={"prompt_id": answer["prompt_id"]}, timeout=10)
    return r.status_code, answer


def errors_of(answer: dict) -> list[tuple[str, str, str]]:
    """(class_type, error type, input name) of every node error."""
    return [(entry["class_type"], e["type"], e.get("extra_info", {}).get("input_name", ""))
            for entry in answer.get("node_errors", {}).values() for e in entry["errors"]]


@pytest.fixture(scope="module")
def graph(real_comfy) -> dict:
    """The workflow filled for a small clip, its start image uploaded to the real server."""
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 90)).save(buf, format="PNG")
    with ComfyClient(real_comfy.url) as client:
        ref = client.upload_image(buf.getvalue(), "wan_start.png")
    return fill(load_workflow(WORKFLOW), workflow_bindings(WORKFLOW), image=ref.filename, prompt="she smiles",
                negative="blurry", seed=7, length=17, width=64, height=48, fps=16, steps=4, cfg=3.5,
                switch_step=2, filename_prefix="video/test")  # fmt: skip


def test_missing_model_files_are_the_only_refusal(real_comfy, graph):
    status, answer = post(real_comfy.url, graph)
    assert status == 400 and answer["error"]["type"] == "prompt_outputs_failed_validation", answer
    found = errors_of(answer)
    wanted = {(cls, "value_not_in_list", name) for cls, name in WAN_MODEL_INPUTS}
    assert set(found) == wanted, found  # nothing but the three loaders' file names: every other input passed
    refused = {e["extra_info"]["received_value"] for entry in answer["node_errors"].values() for e in entry["errors"]}
    assert refused == {graph[n]["inputs"][name] for n in graph for cls, name in WAN_MODEL_INPUTS
                       if graph[n]["class_type"] == cls}


def test_with_the_model_files_present_the_graph_is_queued(real_comfy, model_file, graph):
    folders = {"UNETLoader": "diffusion_models", "CLIPLoader": "text_encoders", "VAELoader": "vae"}
    for node in graph.values():
        for cls, name in WAN_MODEL_INPUTS:
            if node["class_type"] == cls:
                model_file(folders[cls], node["inputs"][name])
    info = requests.get(f"{real_comfy.url}/object_info", timeout=60).json()
    check_workflow(graph, info)  # the product's own pre-check agrees with the server
    status, answer = post(real_comfy.url, graph)
    assert status == 200 and answer["node_errors"] == {}, answer


def test_a_malformed_graph_is_refused_for_its_shape(real_comfy, graph):
    renamed = {**graph, "10": {**graph["10"], "inputs": {**graph["10"]["inputs"], "frames": 17}}}
    del renamed["10"]["inputs"]["length"]
    status, answer = post(real_comfy.url, renamed)
    assert status == 400 and ("WanImageToVideo", "required_input_missing", "length") in errors_of(answer), answer
    wrong_type = {**graph, "14": {**graph["14"], "inputs": {**graph["14"]["inputs"], "fps": "fast"}}}
    status, answer = post(real_comfy.url, wrong_type)
    assert status == 400 and ("CreateVideo", "invalid_input_type", "fps") in errors_of(answer), answer
    unknown = {**graph, "14": {**graph["14"], "class_type": "WanCreateVideo"}}
    status, answer = post(real_comfy.url, unknown)
    assert status == 400 and answer["error"]["type"] == "invalid_prompt" and "WanCreateVideo" in answer["error"]["message"]
