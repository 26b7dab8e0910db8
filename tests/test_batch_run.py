"""run_batch against ComfyUI protocol test servers: spreading, resume after a kill, restarts, per-job failures."""

import json
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from pistachio_nb.batch import run_batch
from pistachio_nb.batch.scheduler import Target, pick_target
from pistachio_nb.files import read_jsonl
from pistachio_nb.batch import BatchParams
from pistachio_testkit.comfy_exec import Behaviour
from pistachio_testkit.comfy_server import ComfyTestServer

PROMPTS = "prompt,seeds\npstchio character smiling,1;2;3\npstchio character in a forest,4;5;6\n"


def params(tmp_path, servers, name="b", prompts=PROMPTS, **over):
    (tmp_path / "prompts.csv").write_text(prompts)
    values = dict(
        workspace=tmp_path / "ws", prompts_file=tmp_path / "prompts.csv", batch_name=name, backends=["comfyui"],
        servers=servers, workflow="txt2img_lora", comfy_checkpoint="tiny-sdxl.safetensors",
        comfy_lora="character.safetensors", model="tiny:sdxl", lora="none", negative="blurry", count=1, base_seed=0,
        lora_strength=0.8, width=64, height=64, steps=3, cfg=5.0, jobs_per_server=1, retries=3, backoff_seconds=0.1,
        job_timeout_seconds=20, request_timeout_seconds=5)
    return BatchParams(**{**values, **over})


def images_of(result):
    return sorted(p.name for p in (result.folder / "images").iterdir())


def test_batch_spreads_over_servers_and_records_everything(tmp_path):
    with ComfyTestServer(behaviour=Behaviour(delay=0.15)) as a, ComfyTestServer(behaviour=Behaviour(delay=0.15)) as b:
        result = run_batch(params(tmp_path, [a.url, b.url]))
        table = result.table
        assert list(table["state"]) == ["done"] * 6
        counts = table["server"].value_counts().to_dict()
        assert set(counts) == {a.url, b.url} and min(counts.values()) >= 2  # both pods did a share
        assert (a.engine.number, b.engine.number) == (counts[a.url], counts[b.url])  # each prompt submitted once
    assert images_of(result) == sorted(f"{j}_0.png" for j in table["job_id"])
    row = table.iloc[0]
    image = Image.open(result.folder / "images" / row.files[0])
    meta = json.loads(image.text["pistachio"])
    assert (meta["prompt"], meta["seed"], meta["job_id"]) == (row.prompt, row.seed, row.job_id)
    assert f"Seed: {row.seed}" in image.text["parameters"] and "<lora:character:0.8>" in image.text["parameters"]
    workflow = json.loads(image.text["prompt"])
    assert workflow["6"]["inputs"]["seed"] == row.seed and workflow["3"]["inputs"]["text"] == row.prompt
    assert result.summary.loc["done", "jobs"] == 6
    assert (result.folder / "manifest.jsonl.params.json").is_file()


def test_rerun_skips_finished_jobs(tmp_path):
    with ComfyTestServer() as srv:
        run_batch(params(tmp_path, [srv.url]))
        again = run_batch(params(tmp_path, [srv.url]))
        assert srv.engine.number == 6
    assert again.summary["jobs"].to_dict() == {"done": 0, "skipped": 6, "failed": 0, "unfinished": 0}


def kill_after_done(srv, manifest, n):
    """Stop the server as soon as the manifest records `n` finished jobs (a pod dying mid-batch)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and sum(r["state"] == "done" for r in read_jsonl(manifest)) < n:
        time.sleep(0.01)
    srv.stop()


def test_kill_midway_then_rerun_loses_and_duplicates_nothing(tmp_path):
    srv = ComfyTestServer(behaviour=Behaviour(delay=0.2)).start()
    p = params(tmp_path, [srv.url], retries=1, backoff_seconds=0.05)
    killer = threading.Thread(target=kill_after_done, args=(srv, p.ws.batches / "b" / "manifest.jsonl", 2))
    killer.start()
    first = run_batch(p)
    killer.join()
    done_first = first.table["state"].tolist().count("done")
    assert 2 <= done_first < 6 and "failed" in first.table["state"].tolist()  # the kill really hit mid-batch
    with ComfyTestServer(port=srv.port) as back:  # the pod comes back on the same address
        second = run_batch(p)
        assert back.engine.number == 6 - done_first  # only the unfinished jobs were generated again
    assert second.table["state"].tolist() == ["done"] * 6
    assert second.summary.loc["skipped", "jobs"] == done_first
    assert images_of(second) == sorted(f"{j}_0.png" for j in second.table["job_id"])


def test_server_restart_midway_is_retried_within_the_run(tmp_path):
    with ComfyTestServer(behaviour=Behaviour(delay=0.05, restart_after=2, restart_seconds=0.3)) as srv:
        result = run_batch(params(tmp_path, [srv.url]))
        restarted = srv.behaviour.restart_after is None
    assert restarted and result.table["state"].tolist() == ["done"] * 6
    assert result.table["attempts"].max() >= 2
    assert len(images_of(result)) == 6


def test_failures_are_per_job_and_the_batch_goes_on(tmp_path):
    class SmallServer(ComfyTestServer):
        def object_info(self):  # a server whose nodes allow at most 512 px (validation fails for 1024)
            info = super().object_info()
            info["EmptyLatentImage"]["input"]["required"]["width"][1]["max"] = 512
            return info

    prompts = ("prompt,seeds,size\nok,1,64x64\ntoo wide,2,1024x64\nFAIL_ME please,3,64x64\nfine too,4,64x64\n")
    with SmallServer(behaviour=Behaviour(fail_when_text="FAIL_ME")) as srv:
        result = run_batch(params(tmp_path, [srv.url], prompts=prompts))
    table = result.table.set_index("prompt")
    assert table["state"].to_dict() == {"ok": "done", "too wide": "failed", "FAIL_ME please": "failed", "fine too": "done"}
    assert "Value 1024 bigger than max of 512: width" in table.loc["too wide", "error"]
    assert "node 6 (KSampler)" in table.loc["FAIL_ME please", "error"]
    assert result.summary["jobs"].to_dict() == {"done": 2, "skipped": 0, "failed": 2, "unfinished": 0}


def test_stuck_prompt_is_cancelled_and_retried(tmp_path):
    with ComfyTestServer(behaviour=Behaviour(hang_next=1)) as srv:
        result = run_batch(params(tmp_path, [srv.url], prompts="prompt,seeds\nx,1\n", job_timeout_seconds=1.0))
        assert srv.engine.remaining() == 0
    assert result.table.loc[0, "state"] == "done" and result.table.loc[0, "attempts"] == 2


def test_hostile_file_names_never_become_paths(tmp_path):
    with ComfyTestServer(behaviour=Behaviour(evil_filenames=True)) as srv:
        result = run_batch(params(tmp_path, [srv.url]))
    assert result.table["state"].tolist() == ["done"] * 6
    assert all(f.startswith("../../") for files in result.table["server_files"] for f in files)
    pngs = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.png"))
    assert pngs == sorted((result.folder / "images" / f).relative_to(tmp_path) for f in images_of(result))


def test_resumes_a_prompt_an_interrupted_run_left_on_the_server(tmp_path):
    with ComfyTestServer() as srv:
        p = params(tmp_path, [srv.url], prompts="prompt,seeds\nx,1\n")
        first = run_batch(p)
        job = first.table.iloc[0]
        prompt_id = job.prompt_id
        first.manifest.record(job.job_id, state="submitted")  # as if killed after POST /prompt, before the download
        (first.folder / "images" / job.files[0]).unlink()
        again = run_batch(p)
        assert srv.engine.number == 1  # picked up from /history, not generated twice
    assert again.table.loc[0, "state"] == "done" and again.table.loc[0, "prompt_id"] == prompt_id
    assert (again.folder / "images" / job.files[0]).is_file()


def test_least_busy_target_first():
    class B:
        name = "comfyui"

    backend = B()
    targets = [Target(backend, "a", 2, busy=1), Target(backend, "b", 2, external=3), Target(backend, "c", 2, busy=0)]
    assert pick_target(targets, backend, 0.0).name == "c"
    targets[2].down_until = 10.0  # c is restarting
    assert pick_target(targets, backend, 0.0).name == "a"
    assert pick_target(targets, backend, 0.0, prefer="b").name == "b"
    targets[0].busy = 2
    targets[1].busy = 2
    assert pick_target(targets, backend, 0.0) is None


def check_demo_outputs(ws, rendered):
    """What the demo run of 06_batch_generation must have written (called from tests/test_notebooks.py)."""
    from pistachio_nb.batch.manifest import Manifest

    folder = ws / "batches" / "demo"
    latest = Manifest(folder / "manifest.jsonl").latest
    assert latest and {r["state"] for r in latest.values()} == {"done"}
    assert {r["backend"] for r in latest.values()} == {"local", "comfyui"}
    for row in latest.values():
        image = Image.open(folder / "images" / row["files"][0])
        assert f"Seed: {row['seed']}" in image.text["parameters"]
        assert ("prompt" in image.text) == (row["backend"] == "comfyui")  # the ComfyUI workflow rides along
    assert "unfinished" in rendered and "has_lora" in rendered and "BatchParams(" not in rendered
    assert "batches/demo/images/" in rendered and f"{ws}/batches" not in rendered  # files relative to the workspace
    assert "_0.png']" not in rendered  # each job's files as paths, not a list repr


def test_a_dead_server_does_not_stop_the_batch(tmp_path):
    with ComfyTestServer(behaviour=Behaviour(delay=0.05)) as live:
        result = run_batch(params(tmp_path, ["http://127.0.0.1:9", live.url], retries=2, backoff_seconds=0.2))
    assert result.table["state"].tolist() == ["done"] * 6 and set(result.table["server"]) == {live.url}


USER_WORKFLOW = Path(__file__).parent / "data" / "sdxl_two_loras.json"  # CLIPTextEncodeSDXL, KSamplerAdvanced, 2 LoRAs
USER_MODELS = {"checkpoints": ["tiny-sdxl.safetensors"], "loras": ["character.safetensors", "detail.safetensors"]}


def test_a_users_sdxl_workflow_is_filled_through_its_bindings(tmp_path):
    prompts = "prompt,seeds,size\npstchio character smiling,11;12,64x96\n"
    with ComfyTestServer(models=USER_MODELS) as srv:
        result = run_batch(params(tmp_path, [srv.url], workflow=str(USER_WORKFLOW), prompts=prompts))
        received = {entry["prompt"][1]: entry["prompt"][2] for entry in srv.engine.history.values()}  # as the server got it
    assert result.table["state"].tolist() == ["done"] * 2 and len(received) == 2
    for row in result.table.itertuples():
        g = {nid: node["inputs"] for nid, node in received[row.prompt_id].items()}
        assert g["20"]["text_g"] == g["20"]["text_l"] == "pstchio character smiling" and g["21"]["text_l"] == "blurry"
        assert (g["30"]["noise_seed"], g["30"]["steps"], g["30"]["cfg"]) == (row.seed, 3, 5.0)
        assert (g["5"]["width"], g["5"]["height"], g["20"]["target_width"], g["21"]["height"]) == (64, 96, 64, 96)
        assert (g["10"]["lora_name"], g["10"]["strength_model"], g["10"]["strength_clip"]) == ("character.safetensors", 0.8, 0.8)
        assert (g["11"]["lora_name"], g["11"]["strength_model"]) == ("detail.safetensors", 0.4)  # the bindings' fixed strength
        assert g["4"]["ckpt_name"] == "tiny-sdxl.safetensors" and g["9"]["filename_prefix"] == f"pistachio/{row.job_id}"


def test_bindings_that_do_not_fit_stop_the_batch_before_any_job_is_sent(tmp_path):
    import shutil

    from pistachio_nb.comfy.bindings import BindingsError

    shutil.copyfile(USER_WORKFLOW, tmp_path / "mine.json")
    text = USER_WORKFLOW.with_name("sdxl_two_loras.bindings.yaml").read_text()
    (tmp_path / "mine.bindings.yaml").write_text(text.replace("input: noise_seed", "input: seed").replace(
        "filename_prefix: {node: \"9\"", "filename_prefix: {node: \"99\""))
    with ComfyTestServer(models=USER_MODELS) as srv:
        with pytest.raises(BindingsError) as err:
            run_batch(params(tmp_path, [srv.url], workflow=str(tmp_path / "mine.json")))
        assert srv.engine.number == 0
    assert "mine.bindings.yaml" in str(err.value) and "2 problem(s)" in str(err.value)
    assert "seed: node 'KSampler (Advanced)' (id 30) (KSamplerAdvanced) has no input 'seed' on this server" in str(err.value)
    assert "filename_prefix: node '99' is not in the workflow" in str(err.value)
