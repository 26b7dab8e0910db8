"""The ComfyUI imitation (pistachio_testkit.comfy_server) answers like the real ComfyUI 0.3.64, case by case.

Both servers get the same files (model names, input images, workflows); each case goes to both and must
agree on status, content type and JSON shape (values too where they are deterministic). Needs
`make comfyui`: without the install every case fails, naming it. Known differences: docs/comfyui-imitation.md.
"""

from __future__ import annotations

import io
import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket
from PIL import Image

from pistachio_testkit import real_comfyui
from pistachio_testkit.comfy_server import ComfyTestServer

pytestmark = pytest.mark.comfyui_real

SAMPLES = json.loads((Path(__file__).parent / "data" / "comfyui-protocol-samples.json").read_text())
MODELS = {"checkpoints": ["tiny-sdxl.safetensors", "sub/other.ckpt"], "loras": ["character.safetensors"],
          "vae": ["tiny-vae.safetensors"]}
VOLATILE = {"prompt_id", "client_id", "timestamp", "traceback", "sid", "ram_total", "ram_free", "vram_total", "vram_free",
            "torch_vram_total", "torch_vram_free", "python_version", "pytorch_version", "argv", "exception_message",
            "exception_type", "current_inputs", "current_outputs", "executed", "node_id", "node_type"}
TIMEOUT = 30.0


def png(colour: tuple[int, int, int], size: tuple[int, int] = (8, 6), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, colour).save(buf, format="PNG")
    return buf.getvalue()


def seed_files(base: Path) -> None:
    """The same model names, input images and workflows under a real or imitation base directory."""
    for folder, names in MODELS.items():
        for name in names:
            (base / "models" / folder / name).parent.mkdir(parents=True, exist_ok=True)
            (base / "models" / folder / name).write_bytes(b"not a model")
    (base / "input" / "sub").mkdir(parents=True, exist_ok=True)
    (base / "input" / "probe.png").write_bytes(png((200, 30, 30)))
    (base / "input" / "sub" / "deep.png").write_bytes(png((30, 200, 30)))
    (base / "input" / "notes.txt").write_text("not an image")
    flows = base / "user" / "default" / "workflows"
    (flows / "nested").mkdir(parents=True, exist_ok=True)
    (flows / "a.json").write_text('{"1": {}}')
    (flows / "nested" / "b.json").write_text('{"2": {}}')


@dataclass
class Pair:
    """The real server and the imitation, with their base directories."""

    real_url: str
    imit_url: str
    real_base: Path
    imit_base: Path
    imitation: ComfyTestServer
    notes: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Start both servers side by side on equivalent files (a missing install raises: run `make comfyui`)."""
    real_base = tmp_path_factory.mktemp("real")
    real_comfyui.make_base_dir(real_base)
    seed_files(real_base)
    imit_base = tmp_path_factory.mktemp("imitation")
    seed_files(imit_base)
    for stray in (imit_base / "user/default/workflows").glob("*.json"):
        if stray.name != "a.json":
            stray.unlink()
    imitation = ComfyTestServer(root=imit_base, models={}, workflows=False).start()
    real = real_comfyui.start(base_dir=real_base)
    try:
        yield Pair(real.url, imitation.url, real_base, imit_base, imitation)
    finally:
        imitation.stop()
        real.stop()


# ------------------------------------------------------------------ comparing answers
def shape(value: Any) -> Any:
    """Keys and value types, recursively; a list becomes the sorted set of its items' shapes."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return ["list", *sorted({json.dumps(shape(v), sort_keys=True) for v in value})]
    return type(value).__name__


def masked(value: Any) -> Any:
    """The value with run-specific fields (ids, times, tracebacks, machine figures) replaced by their type."""
    if isinstance(value, list) and len(value) == 5 and isinstance(value[1], str) and isinstance(value[2], dict):
        value = [value[0], "<prompt_id>", *value[2:]]  # a queue/history row: [number, prompt_id, graph, extra, outputs]
    if isinstance(value, dict):
        return {k: (shape(v) if k in VOLATILE else masked(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


@dataclass
class Answer:
    status: int
    content_type: str
    body: Any  # parsed JSON, or the text / byte length for other bodies

    @classmethod
    def of(cls, r: requests.Response) -> Answer:
        kind = r.headers.get("Content-Type", "").split(";")[0].strip()
        if kind == "application/json":
            return cls(r.status_code, kind, r.json())
        if kind.startswith("text/"):
            return cls(r.status_code, kind, r.text)
        return cls(r.status_code, kind, f"<{len(r.content)} bytes>")


@dataclass
class Case:
    """One request (or scripted exchange) sent to both servers; `check` says how much must agree."""

    name: str
    method: str = "GET"
    route: str = "/"
    kwargs: dict[str, Any] = field(default_factory=dict)
    check: str = "values"  # values | shape | status
    script: Callable[[Pair, str], Any] | None = None  # replaces the request: returns the JSON to compare
    sample: str | None = None  # a recorded answer in comfyui-protocol-samples.json it must also match
    samples: dict[str, Callable[[Any, Any], bool]] = field(default_factory=dict)  # key -> agrees(real body, sample)

    def send(self, p: Pair, url: str) -> Answer:
        if self.script is not None:
            return Answer(200, "application/json", self.script(p, url))
        kwargs = {k: (v() if callable(v) else v) for k, v in self.kwargs.items()}
        return Answer.of(requests.request(self.method, url + self.route, timeout=TIMEOUT, **kwargs))


def compare(case: Case, real: Answer, imit: Answer) -> None:
    assert (imit.status, imit.content_type) == (real.status, real.content_type), (imit, real)
    if case.check == "shape":
        assert shape(imit.body) == shape(real.body), (imit.body, real.body)
    elif case.check == "values":
        assert masked(imit.body) == masked(real.body), (imit.body, real.body)
    if case.sample:
        assert shape(real.body) == shape(SAMPLES[case.sample]) or masked(real.body) == masked(SAMPLES[case.sample])
    for key, agrees in case.samples.items():
        assert agrees(real.body, SAMPLES[key]), (key, real.body, SAMPLES[key])


# ------------------------------------------------------------------ graphs and WebSocket runs
def empty_image(colour: int, out: str = "SaveImage", prefix: str = "agree") -> dict[str, Any]:
    """EmptyImage -> ImageInvert -> SaveImage (or PreviewImage): model-free, runs in milliseconds on CPU."""
    save = {"images": ["2", 0], "filename_prefix": prefix} if out == "SaveImage" else {"images": ["2", 0]}
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 8, "batch_size": 1, "color": colour}},
            "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
            "3": {"class_type": out, "inputs": save}}


def branching(colour: int) -> dict[str, Any]:
    """Two outputs sharing one source, ids out of order, so execution order is ComfyUI's pick, not id order."""
    return {"9": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": colour}},
            "4": {"class_type": "ImageInvert", "inputs": {"image": ["9", 0]}},
            "7": {"class_type": "ImageInvert", "inputs": {"image": ["4", 0]}},
            "2": {"class_type": "PreviewImage", "inputs": {"images": ["7", 0]}},
            "5": {"class_type": "ImageInvert", "inputs": {"image": ["9", 0]}},
            "1": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "branch"}},
            "3": {"class_type": "LoadImage", "inputs": {"image": "probe.png"}},
            "6": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}}}


def failing(colour: int) -> dict[str, Any]:
    """ImageToMask's alpha channel of an RGB image: an IndexError inside the real node."""
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": colour}},
            "2": {"class_type": "ImageToMask", "inputs": {"image": ["1", 0], "channel": "alpha"}},
            "3": {"class_type": "MaskToImage", "inputs": {"mask": ["2", 0]}},
            "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "fail"}}}


def ws_run(url: str, graph: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Connect /ws, POST the graph, read until `executing` None for it; the messages and the history entry."""
    cid = uuid.uuid4().hex
    ws = websocket.create_connection(url.replace("http", "ws", 1) + f"/ws?clientId={cid}", timeout=TIMEOUT)
    try:
        msgs = [json.loads(ws.recv())]
        r = requests.post(url + "/prompt", json={"prompt": graph, "client_id": cid, **(extra or {})}, timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        pid = r.json()["prompt_id"]
        while True:
            msg = ws.recv()
            if not isinstance(msg, str):
                continue  # binary previews
            msgs.append(json.loads(msg))
            if msgs[-1]["type"] == "executing" and msgs[-1]["data"].get("node") is None \
                    and msgs[-1]["data"].get("prompt_id") == pid:
                break
    finally:
        ws.close()
    history = requests.get(f"{url}/history/{pid}", timeout=TIMEOUT).json()[pid]
    return {"pid": pid, "msgs": msgs, "history": history}


def without_progress(messages: Any) -> list:
    """Messages or their types without `progress_state` (the recorded samples predate it; the real server sends it)."""
    return [m for m in messages if "progress_state" not in (m, m.get("type") if isinstance(m, dict) else None)
            and not (isinstance(m, dict) and "nodes" in m.get("data", {}) and isinstance(m["data"]["nodes"], dict))]


def types(run: dict[str, Any]) -> list[str]:
    return [m["type"] for m in run["msgs"]]


def by_type(run: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [m["data"] for m in run["msgs"] if m["type"] == kind]


def executing_order(run: dict[str, Any]) -> list[str]:
    return [d["node"] for d in by_type(run, "executing") if d.get("node") is not None]


def run_success(p: Pair, url: str) -> Any:
    run = ws_run(url, empty_image(0x6E0005))
    return {"types": types(run), "msgs": masked(run["msgs"]), "history": masked(run["history"]),
            "msgs_shape": shape(run["msgs"]), "history_shape": shape(run["history"])}


def run_cached(p: Pair, url: str) -> Any:
    """An identical prompt twice: the second is served from the cache (every node listed, nothing runs)."""
    graph = empty_image(0x123456, prefix="cached")
    first, second = ws_run(url, graph), ws_run(url, graph)
    files = sorted(f["filename"] for f in first["history"]["outputs"]["3"]["images"])
    return {"first": types(first), "second": types(second), "cached": by_type(second, "execution_cached")[0]["nodes"],
            "executed": masked(by_type(second, "executed")), "history": masked(second["history"]),
            "same_files": files == sorted(f["filename"] for f in second["history"]["outputs"]["3"]["images"])}


def run_preview(p: Pair, url: str) -> Any:
    run = ws_run(url, empty_image(0x00FF00, out="PreviewImage"))
    images = run["history"]["outputs"]["3"]["images"]
    return {"types": types(run), "type": [i["type"] for i in images], "subfolder": [i["subfolder"] for i in images],
            "prefix": [i["filename"].split("_")[0] for i in images]}


def run_branching(p: Pair, url: str) -> Any:
    run = ws_run(url, branching(0x010203))
    return {"order": executing_order(run), "types": types(run),
            "outputs": sorted(run["history"]["outputs"]), "meta": masked(run["history"]["meta"])}


def run_failing(p: Pair, url: str) -> Any:
    if url == p.imit_url:
        p.imitation.behaviour.fail_next = 1
    run = ws_run(url, failing(0x445566))
    error = by_type(run, "execution_error")[0]
    status = run["history"]["status"]
    return {"types": types(run), "error": masked(error), "status": masked(status), "error_keys": sorted(error),
            "history_keys": sorted(run["history"]), "outputs": run["history"]["outputs"],
            "message_types": [m[0] for m in status["messages"]]}


def blurs(colour: int) -> dict[str, Any]:
    """A chain of 30 small blurs (~0.2 s each on 2 cores): seconds of work in the real server, which checks for an
    interrupt between nodes, so /interrupt lands within one short node however slow the machine (one big blur took
    15-20 s here and outlived the websocket's timeout on a slower CI machine)."""
    chain = range(10, 40)
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": 512, "height": 512, "batch_size": 1, "color": colour}},
            **{str(n): {"class_type": "ImageBlur", "inputs": {"image": [str(n - 1) if n > chain[0] else "1", 0],
                                                             "blur_radius": 15, "sigma": 5.0}} for n in chain},
            "99": {"class_type": "PreviewImage", "inputs": {"images": [str(chain[-1]), 0]}}}


def run_interrupted(p: Pair, url: str) -> Any:
    """While a prompt runs: /queue shows it running; /interrupt ends it with `execution_interrupted`."""
    if url == p.imit_url:
        p.imitation.behaviour.hang_next = 1
    cid = uuid.uuid4().hex
    ws = websocket.create_connection(url.replace("http", "ws", 1) + f"/ws?clientId={cid}", timeout=TIMEOUT)
    msgs, row = [json.loads(ws.recv())], None
    try:
        pid = requests.post(url + "/prompt", json={"prompt": blurs(0x778899), "client_id": cid}, timeout=TIMEOUT).json()["prompt_id"]
        while not (msgs[-1]["type"] == "executing" and msgs[-1]["data"].get("node") is None):
            msgs.append(json.loads(ws.recv()))
            if row is None and msgs[-1]["type"] == "executing" and msgs[-1]["data"].get("node") == "10":
                row = requests.get(url + "/queue", timeout=TIMEOUT).json()["queue_running"][0]
                assert requests.post(url + "/interrupt", json={"prompt_id": pid}, timeout=TIMEOUT).status_code == 200
    finally:
        ws.close()
    interrupted = [m["data"] for m in msgs if m["type"] == "execution_interrupted"]
    return {"row": masked(row), "row_shape": shape(row), "interrupted": masked(interrupted),
            "interrupted_keys": sorted(interrupted[0]), "last": [m["type"] for m in msgs[-3:]]}


def run_extra_pnginfo(p: Pair, url: str) -> Any:
    run = ws_run(url, empty_image(0x0A0B0C, prefix="meta"), {"extra_data": {"extra_pnginfo": {"workflow": {"a": 1}}}})
    ref = run["history"]["outputs"]["3"]["images"][0]
    with Image.open(io.BytesIO(requests.get(url + "/view", params=ref, timeout=TIMEOUT).content)) as im:
        text = dict(im.text)
    return {"keys": sorted(text), "workflow": json.loads(text["workflow"]), "queue_row": masked(run["history"]["prompt"])}


def ws_hello(p: Pair, url: str) -> Any:
    ws = websocket.create_connection(url.replace("http", "ws", 1) + "/ws?clientId=hello", timeout=TIMEOUT)
    try:
        first = json.loads(ws.recv())
        ws.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": False}}))
        second = json.loads(ws.recv())
    finally:
        ws.close()
    return {"first": first, "second_type": second["type"], "second": shape(second["data"])}


def logs_streamed(p: Pair, url: str) -> Any:
    """Subscribe a socket to the server log, run a model-free graph: the `logs` messages' shape and their lines."""
    cid = uuid.uuid4().hex
    ws = websocket.create_connection(url.replace("http", "ws", 1) + f"/ws?clientId={cid}", timeout=TIMEOUT)
    try:
        r = requests.patch(url + "/internal/logs/subscribe", json={"clientId": cid, "enabled": True}, timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        requests.post(url + "/prompt", json={"prompt": empty_image(77, prefix="logs"), "client_id": cid}, timeout=TIMEOUT)
        logs = []
        while not any(e["m"].startswith("Prompt executed in") for m in logs for e in m["entries"]):
            msg = json.loads(ws.recv())
            if msg["type"] == "logs":
                logs.append(msg["data"])
    finally:
        ws.close()
    lines = [e["m"] for m in logs for e in m["entries"]]
    return {"entry": shape([e for m in logs for e in m["entries"]]), "keys": sorted({k for m in logs for k in m}),
            "lines": [("Prompt executed in N seconds\n" if m.startswith("Prompt executed in") else m) for m in lines]}


def prompt(graph: Any) -> dict[str, Any]:
    return {"json": {"prompt": graph}}


def upload(name: str, data: bytes, **form: str) -> dict[str, Any]:
    return {"files": {"image": (name, data, "image/png")}, "data": {"type": "input", **form}}


def mask(name: str, original: dict[str, str], **form: str) -> dict[str, Any]:
    return upload(name, png((0, 0, 0), mode="RGBA"), original_ref=json.dumps(original), **form)


def written(p: Pair, url: str, rel: str) -> bool:
    return ((p.real_base if url == p.real_url else p.imit_base) / rel).exists()


def mask_missing_original(p: Pair, url: str) -> Any:
    r = requests.post(url + "/upload/mask", timeout=TIMEOUT,
                      **mask("m_missing.png", {"filename": "nope.png", "subfolder": "", "type": "input"}))
    return {"status": r.status_code, "body": r.json(), "written": written(p, url, "input/m_missing.png")}


def mask_dotdot_original(p: Pair, url: str) -> Any:
    r = requests.post(url + "/upload/mask", timeout=TIMEOUT,
                      **mask("m_dots.png", {"filename": "../probe.png", "subfolder": "", "type": "input"}))
    return {"status": r.status_code, "ctype": r.headers.get("Content-Type", "").split(";")[0], "body": r.text,
            "written": written(p, url, "input/m_dots.png")}


def mask_good(p: Pair, url: str) -> Any:
    r = requests.post(url + "/upload/mask", timeout=TIMEOUT,
                      **mask("m_good.png", {"filename": "deep.png", "subfolder": "sub", "type": "input"}, subfolder="sub"))
    with Image.open((p.real_base if url == p.real_url else p.imit_base) / "input/sub/m_good.png") as im:
        return {"body": r.json(), "mode": im.mode, "size": im.size, "alpha": im.getchannel("A").getextrema()}


def upload_twice(data_second: bytes, overwrite: str | None = None) -> Callable[[Pair, str], Any]:
    def script(p: Pair, url: str) -> Any:
        first = requests.post(url + "/upload/image", timeout=TIMEOUT, **upload("twice.png", png((1, 2, 3))))
        form = {} if overwrite is None else {"overwrite": overwrite}
        second = requests.post(url + "/upload/image", timeout=TIMEOUT, **upload("twice.png", data_second, **form))
        return [first.json(), second.json()]
    return script


def object_info_all(p: Pair, url: str) -> Any:
    """Every class the imitation has, with the real server's entry for it (the real one has hundreds more)."""
    info = requests.get(url + "/object_info", timeout=TIMEOUT).json()
    return {name: core(info[name]) for name in sorted(p.imitation.object_info())}


def core(entry: dict[str, Any]) -> dict[str, Any]:
    """An object_info entry without its tooltips and UI hints (kept: types, choices, limits, outputs, names)."""
    keep = ("default", "min", "max", "step", "image_upload")

    def spec(s: Any) -> Any:
        if not isinstance(s, list):  # hidden inputs: "PROMPT", "EXTRA_PNGINFO"
            return s
        return [s[0], {k: v for k, v in (s[1] if len(s) > 1 else {}).items() if k in keep}]

    inputs = {kind: {n: spec(s) for n, s in group.items()} for kind, group in entry["input"].items()}
    return {**{k: entry[k] for k in ("input_order", "output", "output_is_list", "output_name", "name", "display_name",
                                        "python_module", "category", "output_node")}, "input": inputs}


def object_info_one(cls: str) -> Case:
    return Case(f"object_info_{cls}", script=lambda p, url: {
        k: core(v) for k, v in requests.get(f"{url}/object_info/{cls}", timeout=TIMEOUT).json().items()})


def userdata_list(query: str) -> Callable[[Pair, str], Any]:
    def script(p: Pair, url: str) -> Any:
        r = requests.get(f"{url}/userdata?{query}", timeout=TIMEOUT)
        body = sorted(r.json(), key=json.dumps) if r.status_code == 200 else r.text
        return {"status": r.status_code, "ctype": r.headers.get("Content-Type", "").split(";")[0], "body": body}
    return script


LOAD = {"class_type": "LoadImage", "inputs": {"image": "probe.png"}}
SAVE = {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
CKPT = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "missing.safetensors"}}
CLASSES = ["CheckpointLoaderSimple", "LoraLoader", "CLIPTextEncode", "EmptyLatentImage", "KSampler", "VAEDecode",
           "VAEEncode", "SetLatentNoiseMask", "LoadImage", "EmptyImage", "ImageInvert", "ImageToMask", "MaskToImage",
           "SaveImage", "PreviewImage", "UNETLoader", "CLIPLoader", "VAELoader", "ModelSamplingSD3", "WanImageToVideo",
           "CreateVideo", "SaveVideo"]

CASES = [
    Case("system_stats", route="/system_stats", check="shape", sample="system_stats"),
    Case("object_info_SaveImage_raw", route="/object_info/SaveImage", sample="object_info_SaveImage"),
    Case("object_info_all", script=object_info_all),
    *[object_info_one(c) for c in CLASSES],
    Case("object_info_unknown", route="/object_info/NoSuchNode"),
    Case("prompt_get", route="/prompt"),
    Case("queue_idle", route="/queue", sample="queue_idle"),
    Case("history_unknown", route="/history/no-such-prompt"),
    Case("prompt_not_json", "POST", "/prompt", {"data": b"{not json", "headers": {"Content-Type": "application/json"}}),
    Case("prompt_no_prompt", "POST", "/prompt", {"json": {"client_id": "x"}}),
    Case("invalid_unknown_class", "POST", "/prompt", prompt({"1": {"class_type": "NoSuchNode", "inputs": {}}}),
         sample="invalid_unknown_class"),
    Case("invalid_missing_class_type", "POST", "/prompt", prompt({"1": {"inputs": {}}})),
    Case("invalid_missing_input", "POST", "/prompt", prompt({"1": LOAD, "2": {"class_type": "PreviewImage", "inputs": {}}}),
         sample="invalid_missing_input"),
    Case("invalid_value_below_min", "POST", "/prompt", prompt({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 0, "height": 8, "batch_size": 1, "color": 0}}, "2": SAVE}),
         sample="invalid_value_below_min"),
    Case("invalid_value_above_max", "POST", "/prompt", prompt({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 99999, "color": 0}}, "2": SAVE})),
    Case("invalid_input_type", "POST", "/prompt", prompt({
        "1": {"class_type": "EmptyImage", "inputs": {"width": "wide", "height": 8, "batch_size": 1, "color": 0}}, "2": SAVE})),
    Case("invalid_missing_image_file", "POST", "/prompt", prompt({
        "1": {"class_type": "LoadImage", "inputs": {"image": "does_not_exist.png"}}, "2": SAVE}),
         sample="invalid_missing_image_file"),
    Case("invalid_missing_subfolder_image", "POST", "/prompt", prompt({
        "1": {"class_type": "LoadImage", "inputs": {"image": "sub/none.png"}}, "2": SAVE})),
    Case("invalid_no_output_node", "POST", "/prompt", prompt({"1": LOAD}), sample="invalid_no_output_node"),
    Case("invalid_checkpoint_not_in_list", "POST", "/prompt", prompt({
        "1": CKPT, "2": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["1", 2]}},
        "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}})),
    Case("invalid_combo_not_in_list", "POST", "/prompt", prompt({
        "1": {"class_type": "ImageToMask", "inputs": {"image": ["2", 0], "channel": "purple"}}, "2": LOAD,
        "3": {"class_type": "MaskToImage", "inputs": {"mask": ["1", 0]}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}}})),
    Case("invalid_return_type_mismatch", "POST", "/prompt", prompt({
        "1": {"class_type": "ImageToMask", "inputs": {"image": ["2", 0], "channel": "red"}}, "2": LOAD,
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}})),
    Case("invalid_link_to_missing_node_inner", "POST", "/prompt", prompt({
        "1": {"class_type": "ImageInvert", "inputs": {"image": ["99", 0]}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}})),
    Case("invalid_link_to_missing_node_output", "POST", "/prompt", prompt({
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["99", 0]}}})),
    Case("invalid_link_bad_slot", "POST", "/prompt", prompt({"1": LOAD, "2": {
        "class_type": "ImageInvert", "inputs": {"image": ["1", 5]}}, "3": {"class_type": "PreviewImage",
                                                                         "inputs": {"images": ["2", 0]}}})),
    Case("invalid_link_length", "POST", "/prompt", prompt({"1": LOAD, "2": {
        "class_type": "PreviewImage", "inputs": {"images": ["1", 0, 1]}}})),
    Case("valid_subfolder_image", "POST", "/prompt", prompt({
        "1": {"class_type": "LoadImage", "inputs": {"image": "sub/deep.png"}}, "2": SAVE}), check="shape",
         sample="post_prompt_ok"),
    Case("partly_valid_prompt", "POST", "/prompt", prompt({
        "1": LOAD, "2": SAVE, "3": {"class_type": "PreviewImage", "inputs": {}}}), check="shape"),
    Case("queue_post_delete", "POST", "/queue", {"json": {"delete": ["nope"]}}),
    Case("queue_post_clear", "POST", "/queue", {"json": {"clear": True}}),
    Case("interrupt", "POST", "/interrupt", {"json": {}}),
    Case("interrupt_not_json", "POST", "/interrupt", {"data": b"x"}),
    Case("interrupt_other_prompt", "POST", "/interrupt", {"json": {"prompt_id": "not-running"}}),
    Case("free", "POST", "/free", {"json": {"unload_models": True, "free_memory": True}}),
    Case("history_post_delete", "POST", "/history", {"json": {"delete": ["nope"]}}),
    Case("upload_image", "POST", "/upload/image", upload("probe_upload.png", png((9, 9, 9))), sample="upload_image"),
    Case("upload_image_subfolder", "POST", "/upload/image", upload("s.png", png((9, 9, 9)), subfolder="pistachio")),
    Case("upload_same_bytes_same_name", script=upload_twice(png((1, 2, 3)))),
    Case("upload_other_bytes_renamed", script=upload_twice(png((4, 5, 6)))),
    Case("upload_overwrite", script=upload_twice(png((7, 8, 9)), overwrite="true")),
    Case("upload_dotdot_name", "POST", "/upload/image", upload("../escape.png", png((1, 1, 1)))),
    Case("upload_dotdot_subfolder", "POST", "/upload/image", upload("x.png", png((1, 1, 1)), subfolder="../..")),
    Case("upload_no_image", "POST", "/upload/image", {"data": {"type": "input"}}),
    Case("upload_to_temp", "POST", "/upload/image", {**upload("t.png", png((3, 3, 3))), "data": {"type": "temp"}}),
    Case("upload_mask_good", script=mask_good),
    Case("upload_mask_missing_original", script=mask_missing_original),
    Case("upload_mask_dotdot_original", script=mask_dotdot_original),
    Case("view_input", route="/view?filename=probe.png&type=input", check="status"),
    Case("view_subfolder", route="/view?filename=deep.png&subfolder=sub&type=input", check="status"),
    Case("view_annotated", route="/view?filename=probe.png%20[input]", check="status"),
    Case("view_missing", route="/view?filename=nope.png&type=input"),
    Case("view_no_filename", route="/view"),
    Case("view_dotdot", route="/view?filename=../probe.png&type=input"),
    Case("view_bad_type", route="/view?filename=probe.png&type=models"),
    Case("view_subfolder_escape", route="/view?filename=probe.png&subfolder=../..&type=input"),
    Case("view_channel_rgb", route="/view?filename=probe.png&type=input&channel=rgb", check="status"),
    Case("models", route="/models"),
    Case("models_checkpoints", route="/models/checkpoints"),
    Case("models_loras", route="/models/loras"),
    Case("models_unknown", route="/models/no_such_folder"),
    Case("userdata_workflows", script=userdata_list("dir=workflows")),
    Case("userdata_workflows_recurse", script=userdata_list("dir=workflows&recurse=true")),
    Case("userdata_no_dir", script=userdata_list("")),
    Case("userdata_missing_dir", script=userdata_list("dir=nothing_here")),
    Case("userdata_escape_dir", script=userdata_list("dir=../..")),
    Case("userdata_get", route="/userdata/workflows%2Fa.json"),
    Case("userdata_get_missing", route="/userdata/workflows%2Fnope.json"),
    Case("userdata_post", "POST", "/userdata/workflows%2Fnew.json", {"data": b'{"x": 1}'}),
    Case("userdata_post_no_overwrite", "POST", "/userdata/workflows%2Fa.json?overwrite=false", {"data": b"{}"}),
    Case("userdata_get_posted", route="/userdata/workflows%2Fnew.json"),
    Case("logs_raw", route="/internal/logs/raw", check="shape"),
    Case("logs_subscribe", "PATCH", "/internal/logs/subscribe", {"json": {"clientId": "nobody", "enabled": True}}),
    Case("logs_unsubscribe", "PATCH", "/internal/logs/subscribe", {"json": {"clientId": "nobody", "enabled": False}}),
    Case("logs_subscribe_no_client", "PATCH", "/internal/logs/subscribe", {"json": {"enabled": True}}, check="status"),
    Case("logs_streamed", script=logs_streamed),
    Case("ws_hello", script=ws_hello),
    Case("ws_success", script=run_success, samples={
        "ws_types_success": lambda real, sample: real["types"] == sample,
        "ws_msgs_success": lambda real, sample: real["msgs_shape"] == shape(sample) or without_progress(
            json.loads(m) for m in real["msgs_shape"][1:]) == without_progress(json.loads(m) for m in shape(sample)[1:]),
        "history_ok": lambda real, sample: real["history_shape"] == shape(sample)}),
    Case("ws_cached_rerun", script=run_cached),
    Case("ws_preview", script=run_preview),
    Case("ws_branching_order", script=run_branching),
    Case("ws_execution_error", script=run_failing, samples={
        "ws_types_error": lambda real, sample: without_progress(real["types"]) == without_progress(sample),
        "ws_execution_error": lambda real, sample: real["error_keys"] == sorted(sample),
        "history_error_status": lambda real, sample: (real["message_types"], real["status"]["status_str"]) == (
            sample["message_types"], sample["status_str"]) and real["outputs"] == sample["outputs"]}),
    Case("ws_interrupted", script=run_interrupted, samples={
        "queue_busy_item0": lambda real, sample: real["row_shape"][:3] == shape(sample)[:3],
        "ws_execution_interrupted": lambda real, sample: real["interrupted_keys"] == sorted(sample)}),
    Case("ws_extra_pnginfo", script=run_extra_pnginfo),
    Case("history_all", script=lambda p, url: shape(list(requests.get(url + "/history", timeout=TIMEOUT).json().values()))),
    Case("queue_after", route="/queue"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_imitation_answers_like_real_comfyui(pair: Pair, case: Case) -> None:
    real, imit = case.send(pair, pair.real_url), case.send(pair, pair.imit_url)
    compare(case, real, imit)


def test_enough_cases_cover_every_recorded_sample() -> None:
    recorded = {k for k in SAMPLES if not k.startswith("_")}
    covered = {c.sample for c in CASES if c.sample} | {k for c in CASES for k in c.samples}
    assert len(CASES) >= 40
    assert recorded - covered == NEEDS_A_MODEL, sorted(recorded - covered)


NEEDS_A_MODEL = {"ws_progress"}  # KSampler steps: the real server needs a loadable checkpoint (docs/comfyui-imitation.md)
