"""Training killed in the save window (state written, exports not): the resume finishes the step's
checkpoint exactly as an uninterrupted run writes it, and sweeps the temp files a killed save left."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from pistachio_nb.training import checkpoint as ckpt
from pistachio_nb.training import loop, train_lora
from pistachio_nb.training.export import DIFFUSERS_WEIGHTS
from tests.training_data import training_params, write_tiny_dataset

SAMPLES = {"sample_prompts": ["{trigger} woman"], "sample_seeds": [3], "sample_steps": 2}
STEP2 = "step-00000002"


def _killed_after_state(monkeypatch, p) -> None:
    """Run `p`, raising from the first kohya export (after the state was saved), as a kill there would stop it."""
    real, calls = loop.save_kohya, []

    def killed(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 1:
            raise RuntimeError("killed in the save window")
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "save_kohya", killed)
    with pytest.raises(RuntimeError, match="save window"):
        train_lora(p)
    monkeypatch.setattr(loop, "save_kohya", real)


def _tensors_equal(a: Path, b: Path) -> None:
    x, y = load_file(a), load_file(b)
    assert x.keys() == y.keys() and x
    for key in x:
        assert torch.equal(x[key], y[key]), key


def _metadata(path: Path) -> dict:
    with safe_open(str(path), "pt") as f:
        return {k: v for k, v in f.metadata().items() if k != "ss_training_started_at"}


def _rows(lora: Path) -> list[dict]:
    """Manifest rows with the workspace part of paths removed, so two workspaces compare."""
    text = (lora / "checkpoints.jsonl").read_text().replace(str(lora), "LORA")
    return [json.loads(line) for line in text.splitlines()]


def _plant(lora: Path) -> tuple[list[Path], list[Path]]:
    """Temp leftovers a killed save leaves (names this package writes), and look-alikes it must not touch."""
    stale = [lora / "state" / f".{STEP2}.k3x_9q2a.tmp", lora / "state" / ".step-00000004.deleting",
             lora / "diffusers" / f".{STEP2}.ab12cd34.tmp", lora / f".character-{STEP2}.safetensors.zz9y8x7w.tmp",
             lora / ".checkpoints.jsonl.q1w2e3r4.tmp"]  # fmt: skip
    for folder in stale[:3]:
        folder.mkdir(parents=True)
        (folder / "lora.safetensors").write_bytes(b"\0" * 1024)
    for file in stale[3:]:
        file.write_bytes(b"partial")
    keep = [lora / "state" / "notes.tmp", lora / "state" / ".mine.tmp", lora / "state" / "step-00000009.tmp",
            lora / f".other-{STEP2}.safetensors.abc.tmp", lora / "my_lora.safetensors.tmp"]  # fmt: skip
    for file in keep:
        file.write_text("user file")
    (lora / "state" / ".step-backup").mkdir()
    keep.append(lora / "state" / ".step-backup")
    return stale, keep


def test_resume_after_a_kill_in_the_save_window_finishes_that_checkpoint(tmp_path, monkeypatch):
    for name in "ab":
        write_tiny_dataset(tmp_path / name / "dataset")
    straight = train_lora(training_params(tmp_path / "a", max_steps=4, checkpoint_every=2, **SAMPLES))
    a, b = tmp_path / "a" / "lora", tmp_path / "b" / "lora"

    _killed_after_state(monkeypatch, training_params(tmp_path / "b", max_steps=4, checkpoint_every=2, **SAMPLES))
    assert (b / "state" / STEP2 / "state.pt").exists()  # the kill came after the state ...
    assert not (b / f"character-{STEP2}.safetensors").exists() and not (b / "checkpoints.jsonl").read_text()
    stale, keep = _plant(b)

    resumed = train_lora(training_params(tmp_path / "b", max_steps=4, checkpoint_every=2, resume="latest", **SAMPLES))
    assert resumed.resumed_from is not None and resumed.resumed_from.name == STEP2

    kohya = f"character-{STEP2}.safetensors"
    _tensors_equal(a / kohya, b / kohya)
    assert _metadata(a / kohya) == _metadata(b / kohya)
    assert json.loads((b / f"{kohya}.params.json").read_text())["step"] == 2
    _tensors_equal(a / "diffusers" / STEP2 / DIFFUSERS_WEIGHTS, b / "diffusers" / STEP2 / DIFFUSERS_WEIGHTS)
    assert (a / "samples" / STEP2 / "p0-s3.png").read_bytes() == (b / "samples" / STEP2 / "p0-s3.png").read_bytes()
    assert _rows(a) == _rows(b) and [r["step"] for r in _rows(b)] == [2, 4]
    _tensors_equal(straight.final_lora, resumed.final_lora)  # and training went on exactly as without the kill

    assert not [p for p in stale if p.exists()]
    assert all(p.exists() for p in keep)
    assert (b / "state" / "notes.tmp").read_text() == "user file"


def test_kill_at_the_last_checkpoint_still_yields_the_final_lora(tmp_path, monkeypatch):
    for name in "ab":
        write_tiny_dataset(tmp_path / name / "dataset")
    straight = train_lora(training_params(tmp_path / "a", max_steps=2, checkpoint_every=2))
    _killed_after_state(monkeypatch, training_params(tmp_path / "b", max_steps=2, checkpoint_every=2))
    assert not (tmp_path / "b" / "lora" / "character.safetensors").exists()

    resumed = train_lora(training_params(tmp_path / "b", max_steps=2, checkpoint_every=2, resume="latest"))
    assert resumed.steps_done == 2 and [r["step"] for r in resumed.checkpoints] == [2]
    _tensors_equal(straight.final_lora, resumed.final_lora)
    assert resumed.checkpoints[0]["train_loss"] == straight.checkpoints[0]["train_loss"]
    assert resumed.checkpoints[0]["val_loss"] == straight.checkpoints[0]["val_loss"]


def test_stale_temps_names_only_what_training_writes(tmp_path):
    lora = tmp_path / "lora"
    (lora / "samples" / STEP2).mkdir(parents=True)
    (lora / "samples" / STEP2 / ".p0-s3.png.abcd_123.tmp").write_bytes(b"x")
    (lora / "samples" / STEP2 / ".p0-s3.jpg.abcd_123.tmp").write_bytes(b"x")
    (lora / "state").mkdir()
    (lora / "state" / f".{STEP2}.old-4242").mkdir()
    (lora / ".character.safetensors.params.json.u7_i8o9p.tmp").write_bytes(b"x")
    (lora / ".character.safetensors.keep").write_bytes(b"x")
    (lora / ".metrics.csv.a1b2c3d4.tmp").write_bytes(b"x")
    found = {p.relative_to(lora).as_posix() for p in ckpt.stale_temps(lora, "character")}
    assert found == {f"samples/{STEP2}/.p0-s3.png.abcd_123.tmp", f"state/.{STEP2}.old-4242",
                     ".character.safetensors.params.json.u7_i8o9p.tmp", ".metrics.csv.a1b2c3d4.tmp"}  # fmt: skip
    assert ckpt.remove_stale_temps(lora, "character") and not ckpt.stale_temps(lora, "character")
    assert (lora / ".character.safetensors.keep").exists()
