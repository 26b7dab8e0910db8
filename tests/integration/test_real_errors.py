"""Every error shape the client parses, produced by the real ComfyUI (the restart case is in test_real_batch)."""

from __future__ import annotations

import pytest

from pistachio_nb.comfy.client import ComfyClient
from pistachio_nb.comfy.errors import ComfyConnectionError, ExecutionFailedError, PromptRejectedError

from .conftest import dead_url

pytestmark = pytest.mark.comfyui_real


def image_graph(width: int = 64, prefix: str = "pistachio/err") -> dict:
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": width, "height": 64, "batch_size": 1, "color": 0}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}}}


def test_bad_value_is_a_readable_prompt_rejected_error(real_comfy):
    with ComfyClient(real_comfy.url) as client, pytest.raises(PromptRejectedError) as err:
        client.submit(image_graph(width=-8))
    assert "node 1 (EmptyImage)" in str(err.value) and "width" in str(err.value), str(err.value)
    assert err.value.node_errors["1"]["errors"][0]["type"] == "value_smaller_than_min"


def test_unknown_class_and_missing_output_are_rejected(real_comfy):
    with ComfyClient(real_comfy.url) as client:
        with pytest.raises(PromptRejectedError, match="NoSuchNode"):
            client.submit({"1": {"class_type": "NoSuchNode", "inputs": {}}})
        with pytest.raises(PromptRejectedError) as err:
            client.submit({"1": image_graph()["1"]})
        assert err.value.error["type"] == "prompt_no_outputs"


def test_fake_checkpoint_is_an_execution_failed_error(real_comfy, model_file):
    model_file("checkpoints", "fake.safetensors")
    graph = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "fake.safetensors"}},
             "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
             "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 2]}},
             "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "pistachio/fake"}}}
    with ComfyClient(real_comfy.url) as client:
        with pytest.raises(ExecutionFailedError) as err:
            client.run(graph, timeout=60)
        assert err.value.kind == "error" and err.value.data["node_type"] == "CheckpointLoaderSimple"
        assert "node 1 (CheckpointLoaderSimple)" in str(err.value)
        with pytest.raises(ExecutionFailedError):  # the same answer read back from /history
            client.wait(err.value.prompt_id, timeout=10, poll=True)


def test_a_good_graph_runs_and_its_image_downloads(real_comfy):
    with ComfyClient(real_comfy.url) as client:
        result = client.run(image_graph(prefix="pistachio/ok"), timeout=60)
        assert len(result.images) == 1 and result.images[0].subfolder == "pistachio"
        assert client.view(result.images[0])[:8] == b"\x89PNG\r\n\x1a\n"


def test_connection_refused_is_a_connection_error(comfy_install):  # still needs the install: no silent passes
    with ComfyClient(dead_url()) as client:
        with pytest.raises(ComfyConnectionError, match="cannot reach"):
            client.system_stats()
        with pytest.raises(ComfyConnectionError):
            client.submit(image_graph())
