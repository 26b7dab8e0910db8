"""The ComfyUI protocol test server answers like the recorded ComfyUI 0.3.64 samples."""

import io
import json
import re

import pytest
import requests
import websocket
from PIL import Image

from pistachio_nb.paths import repo_root
from pistachio_testkit.comfy_exec import Behaviour
from pistachio_testkit.comfy_server import ComfyTestServer, start

SAMPLES = json.loads((repo_root() / "tests/data/comfyui-protocol-samples.json").read_text())
T = 5  # seconds: every call here has a timeout


@pytest.fixture(scope="module")
def srv():
    with ComfyTestServer(behaviour=Behaviour(delay=0.02)) as server:
        yield server


def probe_graph(width=64):
    """The recorded success probe: EmptyImage -> ImageInvert -> SaveImage."""
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": width, "height": 48, "batch_size": 1, "color": 7208965}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "probe_invert"}},
    }


def run_and_collect(srv, graph, client_id):
    """Connect a WS client, queue the graph, return (prompt_id, messages until `executing` node null)."""
    ws = websocket.create_connection(f"ws://127.0.0.1:{srv.port}/ws?clientId={client_id}", timeout=T)
    try:
        msgs = [json.loads(ws.recv())]
        r = requests.post(f"{srv.url}/prompt", json={"prompt": graph, "client_id": client_id}, timeout=T)
        assert r.status_code == 200, r.text
        while not (msgs[-1]["type"] == "executing" and msgs[-1]["data"]["node"] is None):
            msgs.append(json.loads(ws.recv()))
    finally:
        ws.close()
    return r.json()["prompt_id"], msgs


def test_success_message_order_history_and_view_match_recording(srv):
    prompt_id, msgs = run_and_collect(srv, probe_graph(), "c-success")
    assert [m["type"] for m in msgs] == SAMPLES["ws_types_success"]
    assert msgs[0]["data"]["sid"] == "c-success"
    executed = next(m["data"] for m in msgs if m["type"] == "executed")
    assert set(executed) == set(SAMPLES["ws_msgs_success"][8]["data"])
    history = requests.get(f"{srv.url}/history/{prompt_id}", timeout=T).json()[prompt_id]
    assert set(history) == set(SAMPLES["history_ok"])
    assert history["status"]["status_str"] == "success" and history["status"]["completed"] is True
    assert [m[0] for m in history["status"]["messages"]] == [m[0] for m in SAMPLES["history_ok"]["status"]["messages"]]
    ref = history["outputs"]["3"]["images"][0]
    assert ref["filename"].startswith("probe_invert_") and ref["type"] == "output"
    png = requests.get(f"{srv.url}/view", params=ref, timeout=T)
    assert png.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (64, 48)


def test_error_message_order_and_history(srv):
    srv.behaviour.fail_next = 1
    prompt_id, msgs = run_and_collect(srv, probe_graph(), "c-error")
    # the real 0.3.64 also sends progress_state here (tests/test_imitation_agrees_with_real_comfyui.py); the sample predates it
    assert [m["type"] for m in msgs if m["type"] != "progress_state"] == SAMPLES["ws_types_error"]
    error = next(m["data"] for m in msgs if m["type"] == "execution_error")
    assert set(error) == set(SAMPLES["ws_execution_error"]) and error["node_id"] == "2" and error["executed"] == ["1"]
    status = requests.get(f"{srv.url}/history/{prompt_id}", timeout=T).json()[prompt_id]["status"]
    assert status["status_str"] == "error" and status["completed"] is False
    assert [m[0] for m in status["messages"]] == SAMPLES["history_error_status"]["message_types"]


@pytest.mark.parametrize("case, change", [
    ("invalid_unknown_class", lambda g: g["1"].update(class_type="NoSuchNode")),
    ("invalid_missing_input", lambda g: g["2"]["inputs"].clear()),
    ("invalid_value_below_min", lambda g: g["1"]["inputs"].update(width=0)),
    ("invalid_no_output_node", lambda g: g.pop("3")),
])
def test_validation_errors_have_comfyui_shapes(srv, case, change):
    graph = probe_graph()
    change(graph)
    r = requests.post(f"{srv.url}/prompt", json={"prompt": graph}, timeout=T)
    assert r.status_code == 400
    assert r.json() == SAMPLES[case]


def test_missing_image_file_and_upload(srv):
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": "does_not_exist.png"}},
             "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
             "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}}}
    r = requests.post(f"{srv.url}/prompt", json={"prompt": graph}, timeout=T)
    assert r.status_code == 400 and r.json() == SAMPLES["invalid_missing_image_file"]
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, format="PNG")
    up = requests.post(f"{srv.url}/upload/image", files={"image": ("probe_upload.png", buf.getvalue(), "image/png")},
                       data={"overwrite": "true"}, timeout=T)
    assert up.json() == SAMPLES["upload_image"]
    graph["1"]["inputs"]["image"] = "probe_upload.png"
    assert requests.post(f"{srv.url}/prompt", json={"prompt": graph}, timeout=T).status_code == 200


def test_mask_upload_sets_alpha_of_original(srv):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "blue").save(buf, format="PNG")
    requests.post(f"{srv.url}/upload/image", files={"image": ("orig.png", buf.getvalue())}, data={"overwrite": "true"}, timeout=T)
    mask = io.BytesIO()
    Image.new("RGBA", (8, 8), (0, 0, 0, 7)).save(mask, format="PNG")
    ref = json.dumps({"filename": "orig.png", "subfolder": "", "type": "input"})
    up = requests.post(f"{srv.url}/upload/mask", files={"image": ("orig_mask.png", mask.getvalue())},
                       data={"original_ref": ref, "overwrite": "true"}, timeout=T).json()
    merged = Image.open(srv.root / "input" / up["name"])
    assert merged.mode == "RGBA" and merged.getpixel((0, 0)) == (0, 0, 255, 7)


def test_queue_shows_hanging_prompt_until_interrupted(srv):
    srv.behaviour.hang_next = 1
    ws = websocket.create_connection(f"ws://127.0.0.1:{srv.port}/ws?clientId=c-hang", timeout=T)
    pid = requests.post(f"{srv.url}/prompt", json={"prompt": probe_graph(), "client_id": "c-hang"}, timeout=T).json()["prompt_id"]
    types = []
    while "execution_start" not in types:
        types.append(json.loads(ws.recv())["type"])
    queue = requests.get(f"{srv.url}/queue", timeout=T).json()
    assert [item[1] for item in queue["queue_running"]] == [pid]
    assert len(queue["queue_running"][0]) == len(SAMPLES["queue_busy_item0"])
    requests.post(f"{srv.url}/interrupt", json={}, timeout=T)
    msg = {}
    while msg.get("type") != "execution_interrupted":
        msg = json.loads(ws.recv())
    ws.close()
    assert set(msg["data"]) == set(SAMPLES["ws_execution_interrupted"])
    assert requests.get(f"{srv.url}/queue", timeout=T).json() == SAMPLES["queue_idle"]


def test_info_routes(srv):
    stats = requests.get(f"{srv.url}/system_stats", timeout=T).json()
    assert set(stats) == set(SAMPLES["system_stats"]) and set(stats["devices"][0]) == set(SAMPLES["system_stats"]["devices"][0])
    info = requests.get(f"{srv.url}/object_info/SaveImage", timeout=T).json()
    recorded = SAMPLES["object_info_SaveImage"]["SaveImage"]
    assert set(info["SaveImage"]) == set(recorded)
    assert info["SaveImage"]["input_order"] == recorded["input_order"]
    assert info["SaveImage"]["input"]["hidden"] == recorded["input"]["hidden"]
    assert requests.get(f"{srv.url}/models/loras", timeout=T).json() == ["character.safetensors"]
    listing = requests.get(f"{srv.url}/userdata", params={"dir": "workflows"}, timeout=T).json()
    assert "txt2img_lora.json" in listing
    body = requests.get(f"{srv.url}/userdata/workflows%2Ftxt2img_lora.json", timeout=T).json()
    assert body["8"]["class_type"] == "SaveImage"
    assert requests.get(f"{srv.url}/view", params={"filename": "../../etc/passwd"}, timeout=T).status_code == 400


def test_restart_drops_queue_and_history_then_serves_again():
    with ComfyTestServer() as server:
        pid, _ = run_and_collect(server, probe_graph(), "c-r")
        assert requests.get(f"{server.url}/history/{pid}", timeout=T).json()
        server.restart(down_seconds=0.3)
        assert requests.get(f"{server.url}/history/{pid}", timeout=T).json() == {}


def test_start_returns_url_and_stop():
    url, stop = start(delay=0.0)
    assert requests.get(f"{url}/queue", timeout=T).json() == SAMPLES["queue_idle"]
    stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/queue", timeout=T)


def test_command_line_entry_serves_until_terminated():
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "pistachio_testkit.comfy_server", "--port", "0"],
                            stdout=subprocess.PIPE, text=True)  # port 0: no race with another test for a free port
    try:
        url = re.search(r"http://127\.0\.0\.1:(\d+)", proc.stdout.readline())
        assert url and int(url.group(1)) > 0
        assert requests.get(f"{url.group(0)}/queue", timeout=T).json() == SAMPLES["queue_idle"]
    finally:
        proc.terminate()
    assert proc.wait(30) == 0


def test_a_taken_port_is_a_clear_error():
    with ComfyTestServer() as first:
        with pytest.raises(RuntimeError, match=f"did not start on 127.0.0.1:{first.port}: .*in use"):
            ComfyTestServer(port=first.port).start()
