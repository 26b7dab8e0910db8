"""publish_lora against the ComfyUI imitation: content name + alias, listed, verified by pixels and by ComfyUI's log.

The imitation reads the LoRA file's keys as its LoraLoader does (pistachio_testkit/comfy_lora.py): kohya SDXL
names change the picture; other names are logged as "lora key not loaded" and leave it as at strength 0.
"""

from __future__ import annotations

import ast
import json

import numpy as np
import papermill as pm
import pytest
import requests
from safetensors.numpy import save_file

from pistachio_nb.comfy.client import ComfyClient
from pistachio_nb.comfy.lora_check import Verification, is_flat, lines_in_window, lora_problems, mean_difference
from pistachio_nb.comfy.publish import LoraPublishError, publish_lora, read_published
from pistachio_nb.evaluation import CheckpointsParams
from pistachio_nb.files import write_json
from pistachio_nb.paths import repo_root
from pistachio_testkit.comfy_server import ComfyTestServer

NOTEBOOK = repo_root() / "notebooks" / "04_checkpoints.ipynb"
GOOD = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k"
T = 10


def write_lora(path, modules, seed=0):
    """A kohya LoRA file with the given module names (down, up, alpha each) and its params sidecar."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for m in modules:
        tensors |= {f"{m}.lora_down.weight": rng.standard_normal((4, 8), dtype=np.float32),
                    f"{m}.lora_up.weight": rng.standard_normal((8, 4), dtype=np.float32), f"{m}.alpha": np.array(4.0, np.float32)}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    write_json(f"{path}.params.json", {"params": {"rank": 4}, "step": 100})
    return path


@pytest.fixture
def server(tmp_path):
    with ComfyTestServer(root=tmp_path / "comfy", models={"checkpoints": ["tiny-sdxl.safetensors"]}) as srv:
        yield srv


def params(tmp_path, server, lora_file, **changes) -> CheckpointsParams:
    defaults = {k: ast.literal_eval(v["default"]) for k, v in pm.inspect_notebook(str(NOTEBOOK)).items()}
    ws = tmp_path / "ws"
    write_json(ws / "comparison" / "recommendation.json", {"checkpoint": str(lora_file), "step": 100, "lora_scale": 1.0})
    return CheckpointsParams.validate_values({**defaults, "workspace": str(ws), "comfy_url": server.url,
                                              "comfy_models_dir": str(server.models_root), **changes}, check_paths=False)


def test_publish_copies_verifies_and_moves_the_alias(tmp_path, server):
    lora = write_lora(tmp_path / "ws" / "lora" / "run-step-100.safetensors", [GOOD])
    p = params(tmp_path, server, lora)
    done = publish_lora(p)
    assert done.file.startswith("pstchio-") and done.alias == "pstchio.safetensors"
    loras = server.models_root / "loras"
    assert (loras / done.file).read_bytes() == lora.read_bytes() == (loras / done.alias).read_bytes()
    assert json.loads((loras / f"{done.alias}.params.json").read_text())["published"]["sha256"] == done.sha256
    assert requests.get(f"{server.url}/models/loras", timeout=T).json() == sorted([done.file, done.alias])
    assert done.verification.ok and done.verification.difference > 1 and done.verification.log_source == "stream"
    assert set(done.table["status"]) == {"PASS"}, done.table
    assert read_published(p.ws.root)["sha256"] == done.sha256
    retrained = write_lora(lora, [GOOD], seed=1)  # same file name, new content: a new content name, the alias follows
    again = publish_lora(p)
    assert again.file != done.file and (loras / again.alias).read_bytes() == retrained.read_bytes()


def test_unmatched_keys_fail_and_leave_the_alias_alone(tmp_path, server):
    good = write_lora(tmp_path / "good.safetensors", [GOOD])
    p = params(tmp_path, server, good)
    first = publish_lora(p)
    bad = write_lora(tmp_path / "bad.safetensors", ["lora_transformer_blocks_0_attn_to_k", "unet.mid.proj"])
    with pytest.raises(LoraPublishError, match="does not apply") as err:
        publish_lora(p, lora=bad)
    assert "mean pixel difference 0.00" in str(err.value) and "lora key not loaded: lora_transformer_blocks_0" in str(err.value)
    assert (server.models_root / "loras" / first.alias).read_bytes() == good.read_bytes()
    assert read_published(p.ws.root)["sha256"] == first.sha256


def test_half_matched_keys_change_the_picture_but_the_log_fails_it(tmp_path, server):
    mixed = write_lora(tmp_path / "mixed.safetensors", [GOOD, "lora_unet_typo.blocks"])
    with pytest.raises(LoraPublishError) as err:
        publish_lora(params(tmp_path, server, mixed))
    assert "PASS LoRA changes the picture" in str(err.value) and "FAIL ComfyUI log of the load: 3 unapplied key lines" in str(err.value)


def test_wrong_models_dir_is_named(tmp_path, server):
    lora = write_lora(tmp_path / "l.safetensors", [GOOD])
    (tmp_path / "elsewhere" / "loras").mkdir(parents=True)
    with pytest.raises(LoraPublishError, match="does not list"):
        publish_lora(params(tmp_path, server, lora, comfy_models_dir=str(tmp_path / "elsewhere")))
    with pytest.raises(LoraPublishError, match="is not a folder"):
        publish_lora(params(tmp_path, server, lora, comfy_models_dir=str(tmp_path / "nowhere")))


def test_empty_comfy_url_skips(tmp_path, server):
    assert publish_lora(params(tmp_path, server, write_lora(tmp_path / "l.safetensors", [GOOD]), comfy_url="")) is None


def test_imitation_log_routes_answer_as_comfyui(server):
    with ComfyClient(server.url, use_websocket=False) as client:
        assert client.subscribe_logs("abc") is True
        assert "abc" in server.engine.log_subscribers and client.subscribe_logs("abc", enabled=False)
        assert "abc" not in server.engine.log_subscribers
        requests.post(f"{server.url}/prompt", json={"prompt": {}}, timeout=T)
        entries = client.raw_logs()
    assert entries[-1]["m"] == "got prompt\n" and entries[-1]["t"][:4].isdigit()
    raw = requests.get(f"{server.url}/internal/logs/raw", timeout=T).json()
    assert raw["size"] == {"cols": 80, "rows": 24}
    for _ in range(310):
        server.engine.log_line("x")
    assert len(requests.get(f"{server.url}/internal/logs/raw", timeout=T).json()["entries"]) == 300


def test_missing_log_routes_are_said_plainly(tmp_path, server, monkeypatch):
    monkeypatch.setattr(ComfyClient, "subscribe_logs", lambda self, cid, enabled=True: False)
    monkeypatch.setattr(ComfyClient, "raw_logs", lambda self: None)
    done = publish_lora(params(tmp_path, server, write_lora(tmp_path / "l.safetensors", [GOOD])))
    row = done.table.set_index("check").loc["ComfyUI log of the load"]
    assert done.verification.log_source == "unavailable" and row["status"] == "WARN"
    assert "neither /internal/logs/subscribe nor /internal/logs/raw" in row["found"]


def test_problem_lines_and_time_window():
    lines = ["lora key not loaded: lora_unet_x.alpha\n", "ERROR lora diffusion_model.a.weight shape '[320, 768]' is invalid "
             "for input of size 246720\n", "Requested to load SDXL\n", "ERROR something else\n"]
    assert lora_problems(lines) == ["lora key not loaded: lora_unet_x.alpha", lines[1].strip()]
    entries = [{"t": "2026-01-01T10:00:00.500000", "m": "a"}, {"t": "2026-01-01T10:00:02", "m": "b"}]
    from datetime import datetime

    start = int(datetime.fromisoformat("2026-01-01T10:00:00").timestamp() * 1000)
    assert lines_in_window(entries, start, start + 1000) == ["a"]


def test_mean_difference_is_zero_for_same_pixels_and_counts_levels():
    import io

    from PIL import Image

    def png(value):
        buf = io.BytesIO()
        Image.new("RGB", (4, 4), (value, value, value)).save(buf, format="PNG")
        return buf.getvalue()

    assert mean_difference(png(10), png(10)) == 0.0 and mean_difference(png(10), png(13)) == 3.0


def test_a_flat_picture_without_the_lora_fails_the_check_with_its_cause():
    import io

    from PIL import Image

    noise = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(noise, format="PNG")
    black = io.BytesIO()
    Image.new("RGB", (8, 8)).save(black, format="PNG")
    assert is_flat(black.getvalue()) and not is_flat(noise.getvalue())
    v = Verification("x.safetensors", 1.0, difference=40.0, flat=True)  # a LoRA that "changes" a black render
    assert not v.ok
    assert v.rows()[0]["status"] == "FAIL" and "fp16" in v.rows()[0]["found"]
    assert Verification("x.safetensors", 1.0, difference=40.0).ok


def test_cli_publish_lora_prints_the_table_and_exits_by_verdict(tmp_path, server, capsys):
    import yaml

    from pistachio_nb.cli import main

    lora = write_lora(tmp_path / "ws" / "lora" / "a-step-10.safetensors", [GOOD])
    params(tmp_path, server, lora)  # writes the recommendation
    profile = tmp_path / "profile.yaml"
    profile.write_text(yaml.safe_dump({"common": {"workspace": str(tmp_path / "ws")}, "04_checkpoints": {
        "comfy_url": server.url, "comfy_models_dir": str(server.models_root)}}))
    assert main(["publish-lora", "--params", str(profile)]) == 0
    out = capsys.readouterr().out
    assert "LoRA changes the picture" in out and "ComfyUI workflows can use pstchio.safetensors" in out
    bad = write_lora(tmp_path / "bad.safetensors", ["nope.weights"])
    assert main(["publish-lora", "--params", str(profile), "--lora", str(bad)]) == 1
    assert "lora key not loaded: nope.weights.alpha" in capsys.readouterr().out


def test_health_row_sees_the_alias_and_a_hand_replaced_one(tmp_path, server):
    from pistachio_nb import health

    lora = write_lora(tmp_path / "l.safetensors", [GOOD])
    p = params(tmp_path, server, lora)
    assert health.check_published_lora(p.ws.root, server.models_root, []).status == "WARN"  # nothing published yet
    done = publish_lora(p)
    row = health.check_published_lora(p.ws.root, server.models_root, [done.alias])
    assert row.status == "PASS" and done.file in row.found
    assert health.check_published_lora(p.ws.root, server.models_root, []).status == "FAIL"
    write_lora(server.models_root / "loras" / done.alias, [GOOD], seed=5)
    row = health.check_published_lora(p.ws.root, server.models_root, [done.alias])
    assert row.status == "FAIL" and "other content" in row.found
