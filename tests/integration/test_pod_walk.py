"""The pod profile walked end to end on CPU, as cron would run it, with every /workspace value under a temp root.

`params/pod.yaml` as shipped, with: `/workspace/` replaced by a temp root; the demo's sizes and tiny models
for every value that is not one of the pod's paths (so it runs on CPU in minutes); the `SET:` checkpoint
names filled in as ComfyUI lists them; and two stand-ins from the test world under `services:` — the
local hub serving the tiny models as hub repos (HF_HOME on the "volume", as the README sets it) and the
ComfyUI imitation rooted at `<root>/ComfyUI`. The user's data is made where the README says to put it.
Then the README's command: `pistachio run all --params ... --gate health --log ...` under `env -i`.

06 runs its batch through a user-style workflow pulled into the data folder with its bindings beside it
(CLIPTextEncodeSDXL, KSamplerAdvanced, a character and a detail LoRA: tests/data/sdxl_two_loras.*).

Not walked here: the real ComfyUI as the pod's ComfyUI (no SDXL checkpoint it can load runs on a CPU; publishing
and verifying a LoRA on the real server is tests/integration/test_publish_real.py, a batch there
test_real_batch.py), and the `/workspace` volume-mount row of the health check (tests/test_health_observes.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pistachio_testkit.demo_data import make_demo_images
from pistachio_testkit.demo_kb import write_demo_kb

from ..conftest import ROOT

SECRET = "hf_PodWalkSecret0123456789"
DATA_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".csv", ".json", ".jsonl", ".txt", ".safetensors", ".html", ".log"}
TINY_CHECKPOINT = "tiny-sdxl.safetensors"  # what the imitation lists in models/checkpoints


def pod_walk_profile(root, out) -> dict:
    """pod.yaml with /workspace moved to `root`, the demo's CPU-sized values elsewhere, and the test world's servers."""
    pod = yaml.safe_load((ROOT / "params" / "pod.yaml").read_text().replace("/workspace/", f"{root}/"))
    demo = yaml.safe_load((ROOT / "params" / "demo.yaml").read_text())
    for section, values in pod.items():
        for key, value in demo.get(section, {}).items() if section != "common" else ():
            if not (isinstance(values.get(key), str) and values[key].startswith(str(root))):
                values[key] = value  # a pod path stays; every size, model and setting becomes the demo's
        if "comfy_checkpoint" in values:
            values["comfy_checkpoint"] = TINY_CHECKPOINT  # SET: as ComfyUI lists it
    pod["00_setup"]["workflows_dir"] = str(root / "pistachio-data" / "workflows")  # not into this repo
    pod["06_batch_generation"]["workflow"] = str(root / "pistachio-data" / "workflows" / "api" / "sdxl_two_loras.json")
    services = demo["services"]
    pod["services"] = {"model_files": {**services["model_files"], "hf_home": str(root / "pistachio-data" / "huggingface")},
                       "comfyui": {**services["comfyui"], "root": str(root / "ComfyUI"),
                                   "models": {**services["comfyui"]["models"], "loras": ["detail.safetensors"]}}}
    path = out / "pod-walk.yaml"
    path.write_text(yaml.safe_dump(pod))
    return pod


def user_data(pod: dict) -> None:
    """Photos, prompts, a picture to fix and notes, where pod.yaml (and the README) put them."""
    make_demo_images(pod["01_dataset"]["source_dir"])
    shutil.copy(ROOT / "params" / "prompts-demo.csv", pod["06_batch_generation"]["prompts_file"])
    shutil.copy(ROOT / "params" / "video-prompts-demo.csv", pod["08_video"]["prompts_file"])  # start images: 06's batch
    picture = sorted(Path(pod["01_dataset"]["source_dir"]).rglob("*.png"))[0]
    dest = Path(pod["05_inpainting"]["image"])
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(picture, dest)
    write_demo_kb(Path(pod["07_knowledge_audit"]["kb_root"]))
    workflow = Path(pod["06_batch_generation"]["workflow"])  # the user's own graph, as `workflows pull` leaves it
    workflow.parent.mkdir(parents=True, exist_ok=True)
    for suffix in (".json", ".bindings.yaml"):
        shutil.copy(ROOT / "tests" / "data" / f"sdxl_two_loras{suffix}", workflow.with_name(f"sdxl_two_loras{suffix}"))


def untracked() -> set[str]:
    """Files in the clone that `git add -A` would add (others may be editing code meanwhile: data is what counts)."""
    listed = subprocess.run(["git", "ls-files", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True)
    return {p for p in listed.stdout.splitlines() if Path(p).suffix.lower() in DATA_SUFFIXES}


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    out = tmp_path_factory.mktemp("pod-walk")
    root = out / "workspace"  # stands for /workspace
    pod = pod_walk_profile(root, out)
    user_data(pod)
    home = out / "home"
    env_file = home / ".config" / "pistachio" / "env"
    env_file.parent.mkdir(parents=True)
    env_file.write_text(f"HF_TOKEN={SECRET}\n")
    env_file.chmod(0o600)
    before = untracked()
    command = (f".venv/bin/pistachio run all --params {out / 'pod-walk.yaml'} --gate health "
               f"--log {out / 'cron.log'} --runs-dir {out / 'runs'}")
    proc = subprocess.run(["env", "-i", "PATH=/usr/bin:/bin", f"HOME={home}", "OMP_NUM_THREADS=1", "/bin/sh", "-c",
                           f"cd {ROOT} && {command}"], capture_output=True, text=True, timeout=3000)
    after = untracked()
    return proc, pod, root, out, before, after


def test_the_pod_profile_runs_every_notebook(walk):
    proc, pod, root, out, _, _ = walk
    log = (out / "cron.log").read_text()
    assert proc.returncode == 0, log[-4000:]
    (run_dir,) = (out / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["ok"] and len(summary["notebooks"]) == 9
    assert "health gate: " in log and "0 FAIL" in log and "[03_training cell " in log


def test_everything_lands_outside_the_clone_and_secrets_nowhere(walk):
    proc, pod, root, out, before, after = walk
    ws = root / "pistachio-data" / "character"
    assert pod["common"]["workspace"] == str(ws)
    assert (ws / "dataset" / "metadata.jsonl").is_file() and list((ws / "lora").glob("*-step-*.safetensors"))
    published = json.loads((ws / "comparison" / "published.json").read_text())
    assert (root / "ComfyUI" / "models" / "loras" / published["alias"]).is_file()  # 04 published into "ComfyUI"
    assert list((root / "pistachio-data" / "huggingface").rglob("*.safetensors"))  # hub models on the volume
    assert after <= before  # no photo, caption, table, LoRA or log of the run lies in the clone for git to pick up
    texts = [p.read_text(errors="ignore") for p in (out / "runs").rglob("*") if p.is_file()]
    assert all(SECRET not in t for t in texts + [(out / "cron.log").read_text(), proc.stdout, proc.stderr])


def test_the_batch_ran_through_the_users_workflow_with_its_bindings(walk):
    from PIL import Image

    proc, pod, root, out, _, _ = walk
    ws = root / "pistachio-data" / "character"
    images = sorted((ws / "batches").rglob("*.png"))
    graphs = []
    for path in images:
        with Image.open(path) as img:
            if "prompt" in img.text:  # the ComfyUI backend's images carry the graph that made them
                graphs.append(json.loads(img.text["prompt"]))
    assert graphs, [p.name for p in images]
    for graph in graphs:
        assert {n["class_type"] for n in graph.values()} >= {"CLIPTextEncodeSDXL", "KSamplerAdvanced"}
        positive, detail = graph["20"]["inputs"], graph["11"]["inputs"]
        assert positive["text_g"] == positive["text_l"] and "pstchio" in positive["text_g"]
        assert graph["10"]["inputs"]["lora_name"] == pod["06_batch_generation"]["comfy_lora"]
        assert detail["lora_name"] == "detail.safetensors" and detail["strength_model"] == 0.4
        assert graph["5"]["inputs"]["width"] == pod["06_batch_generation"]["width"] == positive["target_width"]
