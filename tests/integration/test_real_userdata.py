"""Pulling the workflows saved in the real ComfyUI (`/userdata?dir=workflows`): fresh server, then one saved."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import requests

from pistachio_nb.comfy.client import ComfyClient
from pistachio_nb.files import read_json
from pistachio_nb.workflow_convert import pull_workflows
from pistachio_testkit import real_comfyui

pytestmark = pytest.mark.comfyui_real

UI_WORKFLOW = {  # what the editor saves: EmptyImage -> SaveImage
    "last_node_id": 2, "last_link_id": 1, "version": 0.4,
    "nodes": [
        {"id": 1, "type": "EmptyImage", "mode": 0, "inputs": [],
         "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}], "widgets_values": [64, 48, 1, 255]},
        {"id": 2, "type": "SaveImage", "mode": 0, "inputs": [{"name": "images", "type": "IMAGE", "link": 1}],
         "outputs": [], "widgets_values": ["pistachio/pulled"]},
    ],
    "links": [[1, 1, 0, 2, 0, "IMAGE"]], "groups": [], "config": {}, "extra": {},
}


@pytest.fixture(scope="module")
def fresh_comfy(comfy_install):
    """A server nobody saved a workflow on yet."""
    with real_comfyui.start() as srv:
        yield srv


def test_pull_on_a_fresh_server_then_after_one_save(fresh_comfy, tmp_path):
    url = fresh_comfy.url
    r = requests.get(f"{url}/userdata", params={"dir": "workflows"}, timeout=10)
    assert r.status_code == 404 and "Directory not found" in r.text  # the real answer before any save
    assert pull_workflows(url, tmp_path / "wf").empty
    saved = requests.post(f"{url}/userdata/{quote('workflows/x.json', safe='')}", json=UI_WORKFLOW, timeout=10)
    assert saved.status_code == 200, saved.text
    table = pull_workflows(url, tmp_path / "wf")
    assert table[["workflow", "format", "saved_status", "api_status", "nodes"]].values.tolist() == [
        ["x.json", "ui", "new", "new", 2]]
    assert read_json(table.loc[0, "saved_file"]) == UI_WORKFLOW
    api = read_json(table.loc[0, "api_file"])
    with ComfyClient(url) as client:  # the pulled API form runs on the server it came from
        result = client.run(api, timeout=60)
    assert [i.filename.startswith("pulled") for i in result.images] == [True]
    assert pull_workflows(url, tmp_path / "wf")["saved_status"].tolist() == ["unchanged"]
