"""Prompts files -> jobs with stable ids; the manifest's last-line-wins state; PNG text metadata."""

import io
import json

import pytest
from PIL import Image

from pistachio_nb.batch.jobs import Defaults, load_jobs
from pistachio_nb.batch.manifest import Manifest
from pistachio_nb.batch.pngmeta import with_text
from pistachio_nb.errors import InputDataError

DEFAULTS = Defaults(negative="blurry", count=2, base_seed=100, lora_strength=0.9, width=64, height=64)
SETTINGS = {"backend": "comfyui", "checkpoint": "a.safetensors", "steps": 4}
ROWS = [
    {"prompt": "pstchio character smiling", "seeds": "1;2", "size": "64x96"},
    {"prompt": "pstchio character in a forest", "negative": "ugly", "lora_strength": 0.5},
]


def write(tmp_path, kind, rows=ROWS):
    path = tmp_path / f"prompts.{kind}"
    if kind == "csv":
        cols = ["prompt", "negative", "seeds", "lora_strength", "size"]
        lines = [",".join(cols)] + [",".join(str(r.get(c, "")) for c in cols) for r in rows]
        path.write_text("\n".join(lines) + "\n")
    elif kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        import yaml

        path.write_text(yaml.safe_dump({"prompts": rows}))
    return path


@pytest.mark.parametrize("kind", ["csv", "yaml", "jsonl"])
def test_formats_expand_to_the_same_jobs(tmp_path, kind):
    jobs = load_jobs(write(tmp_path, kind), DEFAULTS, SETTINGS)
    assert [(j.seed, j.width, j.height, j.negative, j.lora_strength) for j in jobs] == [
        (1, 64, 96, "blurry", 0.9), (2, 64, 96, "blurry", 0.9), (100, 64, 64, "ugly", 0.5), (101, 64, 64, "ugly", 0.5)]
    csv_ids = [j.job_id for j in load_jobs(write(tmp_path, "csv"), DEFAULTS, SETTINGS)]
    assert [j.job_id for j in jobs] == csv_ids  # same content -> same ids, whatever the file type


def test_ids_are_stable_and_change_only_with_content(tmp_path):
    path = write(tmp_path, "jsonl")
    first = [j.job_id for j in load_jobs(path, DEFAULTS, SETTINGS)]
    assert first == [j.job_id for j in load_jobs(path, DEFAULTS, SETTINGS)] and len(set(first)) == 4
    edited = write(tmp_path, "jsonl", [ROWS[0], {**ROWS[1], "prompt": "pstchio character at the beach"}])
    second = [j.job_id for j in load_jobs(edited, DEFAULTS, SETTINGS)]
    assert second[:2] == first[:2] and not set(second[2:]) & set(first)
    other_model = [j.job_id for j in load_jobs(path, DEFAULTS, {**SETTINGS, "checkpoint": "b.safetensors"})]
    assert not set(other_model) & set(first)  # another model makes other pictures: new jobs


def test_duplicate_rows_make_one_job(tmp_path):
    jobs = load_jobs(write(tmp_path, "jsonl", [ROWS[0], ROWS[0]]), DEFAULTS, SETTINGS)
    assert len(jobs) == 2


@pytest.mark.parametrize("row, message", [
    ({"prompt": ""}, "prompt"),
    ({"prompt": "x", "seeds": "1;minus"}, "seeds"),
    ({"prompt": "x", "size": "100x64"}, "multiples of 8"),
    ({"prompt": "x", "sede": 3}, "unknown parameter"),
    ({"prompt": "x", "count": 0}, "count"),
    ({"prompt": "x", "count": 2, "seeds": [1]}, "seeds or count, not both"),
])
def test_bad_rows_name_the_file_line_and_field(tmp_path, row, message):
    path = write(tmp_path, "jsonl", [ROWS[0], row])
    with pytest.raises(InputDataError) as err:
        load_jobs(path, DEFAULTS, SETTINGS)
    assert "prompts.jsonl row at line/item 2" in str(err.value) and message in str(err.value)


def test_missing_file_and_missing_prompt_column(tmp_path):
    with pytest.raises(InputDataError, match="does not exist"):
        load_jobs(tmp_path / "nope.csv", DEFAULTS, SETTINGS)
    (tmp_path / "p.csv").write_text("text,seeds\nhello,1\n")
    with pytest.raises(InputDataError, match="no 'prompt' column"):
        load_jobs(tmp_path / "p.csv", DEFAULTS, SETTINGS)


def test_manifest_last_line_wins_and_survives_a_torn_line(tmp_path):
    m = Manifest(tmp_path / "manifest.jsonl")
    m.record("a", state="pending", prompt="x")
    m.record("a", state="done", files=["a_0.png"])
    m.record("b", state="failed", error="boom")
    with (tmp_path / "manifest.jsonl").open("a") as fh:
        fh.write('{"job_id": "b", "state": "do')  # killed mid-write
    again = Manifest(tmp_path / "manifest.jsonl")
    assert again.state("a") == "done" and again.latest["a"]["prompt"] == "x" and again.state("b") == "failed"
    table = again.table(["b", "a"])
    assert list(table["job_id"]) == ["b", "a"] and table.loc[1, "files"] == ["a_0.png"]


def test_png_text_chunks_keep_pixels_and_replace_same_keys():
    buf = io.BytesIO()
    src = Image.new("RGB", (8, 8), (10, 200, 30))
    src.save(buf, format="PNG")
    once = with_text(buf.getvalue(), {"prompt": '{"1": {}}', "parameters": "café, seed 7"})
    twice = with_text(once, {"parameters": "seed 8"})
    image = Image.open(io.BytesIO(twice))
    assert image.text == {"prompt": '{"1": {}}', "parameters": "seed 8"}
    assert image.convert("RGB").tobytes() == src.tobytes()
    with pytest.raises(ValueError, match="not a PNG"):
        with_text(b"GIF89a", {"a": "b"})


def test_malformed_yaml_prompts_file_names_the_file(tmp_path):
    bad = tmp_path / "prompts.yaml"
    bad.write_text("prompts:\n  - prompt: [unclosed\n")
    with pytest.raises(InputDataError, match=r"prompts.yaml: not valid YAML"):
        load_jobs(bad, DEFAULTS, SETTINGS)


def test_ids_hash_the_filled_workflow_and_the_loras_content(tmp_path):
    path = write(tmp_path, "jsonl")
    graph = {"1": {"class_type": "LoraLoader", "inputs": {"lora_name": "pstchio.safetensors", "strength_model": 1.0}},
             "2": {"class_type": "KSampler", "inputs": {"sampler_name": "euler"}}}

    def graph_of(g):
        return lambda job: {**g, "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": f"pistachio/{job.job_id}"}}}

    ids = lambda **kw: [j.job_id for j in load_jobs(path, DEFAULTS, SETTINGS, **kw)]  # noqa: E731
    first = ids(graph_of=graph_of(graph), lora_content={"pstchio.safetensors": "a" * 64})
    assert first == ids(graph_of=graph_of(graph), lora_content={"pstchio.safetensors": "a" * 64})
    edited = {**graph, "2": {"class_type": "KSampler", "inputs": {"sampler_name": "dpmpp_2m"}}}  # same file name, edited
    assert not set(ids(graph_of=graph_of(edited), lora_content={"pstchio.safetensors": "a" * 64})) & set(first)
    retrained = ids(graph_of=graph_of(graph), lora_content={"pstchio.safetensors": "b" * 64})  # same alias, new content
    assert not set(retrained) & set(first)
    assert [j.job_id for j in load_jobs(path, DEFAULTS, SETTINGS)] != first  # no graph: ids from row + settings only


def test_a_local_lora_counts_by_content_not_name(tmp_path):
    path = write(tmp_path, "jsonl")
    lora = tmp_path / "character.safetensors"
    lora.write_bytes(b"one")
    settings = {**SETTINGS, "backend": "local", "lora": str(lora)}
    first = [j.job_id for j in load_jobs(path, DEFAULTS, settings)]
    lora.write_bytes(b"two!")  # retrained, same name
    assert not set(j.job_id for j in load_jobs(path, DEFAULTS, settings)) & set(first)
