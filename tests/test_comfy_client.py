"""The ComfyUI client against the protocol test server: results, readable errors, fallbacks, timeouts, safety."""

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from pistachio_nb.comfy import (ComfyClient, ComfyConnectionError, ComfyError, ComfyTimeoutError, ExecutionFailedError,
                                PromptLostError, PromptRejectedError, fill, load_workflow, safe_filename)
from pistachio_testkit.comfy_exec import Behaviour
from pistachio_testkit.comfy_server import ComfyTestServer


@pytest.fixture(scope="module")
def srv():
    with ComfyTestServer(behaviour=Behaviour(delay=0.02)) as server:
        yield server


@pytest.fixture()
def client(srv):
    with ComfyClient(srv.url, timeout=(2, 5)) as c:
        yield c


def graph(**values):
    base = dict(checkpoint="tiny-sdxl.safetensors", lora="character.safetensors", width=64, height=48, steps=3)
    return fill(load_workflow("txt2img_lora"), **{**base, **values})


def test_run_returns_images_that_view_downloads(client):
    result = client.run(graph(seed=1), timeout=10)
    assert len(result.images) == 1 and result.images[0].node == "8"
    image = Image.open(io.BytesIO(client.view(result.images[0])))
    assert image.size == (64, 48)
    other = client.view(client.run(graph(seed=2), timeout=10).images[0])
    assert other != client.view(result.images[0])  # the seed changes the pixels


def test_rejected_prompt_shows_node_errors_readably(client):
    with pytest.raises(PromptRejectedError) as err:
        client.submit(graph(steps=0, lora="missing.safetensors"))
    text = str(err.value)
    assert "node 6 (KSampler): Value 0 smaller than min of 1: steps" in text
    assert "node 2 (LoraLoader): Value not in list: lora_name: 'missing.safetensors'" in text
    assert set(err.value.node_errors) == {"2", "6"} and isinstance(err.value, ValueError)


def test_execution_error_names_the_node(srv, client):
    srv.behaviour.fail_next = 1
    with pytest.raises(ExecutionFailedError) as err:
        client.run(graph(seed=3), timeout=10)
    assert "node 6 (KSampler)" in str(err.value) and err.value.kind == "error"


def test_polling_history_without_websocket(srv):
    with ComfyClient(srv.url, use_websocket=False) as c:
        result = c.run(graph(seed=4), timeout=10)
    assert result.images and c._ws is None


def test_timeout_then_cancel_frees_the_server(srv, client):
    srv.behaviour.hang_next = 1
    prompt_id = client.submit(graph(seed=5))
    with pytest.raises(ComfyTimeoutError):
        client.wait(prompt_id, timeout=0.5)
    client.cancel(prompt_id)
    assert client.run(graph(seed=6), timeout=10).images  # the queue moves again
    assert client.load() == 0


def test_restart_midway_raises_prompt_lost():
    with ComfyTestServer(behaviour=Behaviour(delay=5.0)) as server, ComfyClient(server.url, timeout=(2, 5)) as c:
        prompt_id = c.submit(graph(seed=7))
        server.restart(down_seconds=0.2)
        with pytest.raises(PromptLostError):
            c.wait(prompt_id, timeout=10)
        server.behaviour.delay = 0.0
        assert c.run(graph(seed=8), timeout=20).images  # reconnects to the restarted server


def test_unreachable_server_is_a_connection_error():
    with ComfyClient("http://127.0.0.1:9", timeout=(0.5, 0.5)) as c:
        with pytest.raises(ComfyConnectionError) as err:
            c.system_stats()
    assert isinstance(err.value, ConnectionError) and "127.0.0.1:9" in str(err.value)


def test_500_for_our_malformed_body_is_not_retryable_but_a_proxy_503_is(client):
    with pytest.raises(ComfyError) as err:  # ComfyUI's aiohttp answers 500 to a body that is not JSON
        client._json("POST", "/prompt", data=b"{not json", headers={"Content-Type": "application/json"})
    assert not isinstance(err.value, ComfyConnectionError) and "500" in str(err.value)

    class Gateway(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(503)
            self.end_headers()

        def log_message(self, *args):
            pass

    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        with ComfyClient(f"http://127.0.0.1:{proxy.server_port}", timeout=(1, 2)) as c:
            with pytest.raises(ComfyConnectionError, match="503"):  # a restarting pod behind its proxy: retried
                c.system_stats()
    finally:
        proxy.shutdown()


def test_info_verbs(client):
    assert client.system_stats()["system"]["comfyui_version"]
    assert "KSampler" in client.object_info()
    assert client.models("loras") == ["character.safetensors"]
    client.free()
    client.interrupt()
    assert client.queue() == {"queue_running": [], "queue_pending": []}


def test_upload_then_use_in_a_graph(client):
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), "green").save(buf, format="PNG")
    ref = client.upload_image(buf.getvalue(), "face.png")
    g = {"1": {"class_type": "LoadImage", "inputs": {"image": ref.filename}},
         "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "up"}}}
    out = client.view(client.run(g, timeout=10).images[0])
    assert Image.open(io.BytesIO(out)).size == (16, 16)  # the result has the loaded picture's size
    mask = io.BytesIO()
    Image.new("RGBA", (16, 16), (0, 0, 0, 0)).save(mask, format="PNG")
    masked = client.upload_mask(mask.getvalue(), "face_mask.png", ref)
    g["1"]["inputs"]["image"] = masked.filename
    assert masked.filename == "face_mask.png" and client.run(g, timeout=10).images


@pytest.mark.parametrize("hostile, expected", [
    ("../../evil.png", "evil.png"), ("/etc/passwd", "passwd"), ("..\\..\\win.png", "win.png"),
    ("..", "image"), ("", "image"), ("a/b/../c d.png", "c d.png"), ("x\x00y.png", "x_y.png"),
])
def test_safe_filename_neutralises_paths(hostile, expected):
    assert safe_filename(hostile) == expected


def test_hostile_server_names_stay_inside_the_folder(tmp_path):
    with ComfyTestServer(behaviour=Behaviour(evil_filenames=True)) as server, ComfyClient(server.url) as c:
        result = c.run(graph(seed=9), timeout=10)
        assert result.images[0].filename.startswith("../../")
        saved = c.download_to(result.images[0], tmp_path / "out")
    assert saved.parent == tmp_path / "out" and saved.is_file()
    assert sorted(p.name for p in tmp_path.rglob("*.png")) == [saved.name]
