"""Reading the dataset stage's output, SDXL conditioning, bucketed batches, caches and the VRAM table."""

from __future__ import annotations

import json
import random

import torch

from pistachio_nb.training.data import epoch_batches, load_dataset, tag_frequency
from pistachio_nb.training.features import DiskCache
from pistachio_nb.training.vram import plan_vram
from tests.training_data import write_tiny_dataset


def test_load_dataset_reads_splits_repeats_trigger_and_time_ids(tmp_path):
    root = write_tiny_dataset(tmp_path, n_train=3, n_val=1, repeats=5, sizes=((64, 64), (48, 80)))
    data = load_dataset(root, 64)
    assert len(data.train) == 3 and len(data.validation) == 1
    assert data.trigger == "ohwx" and data.class_word == "woman"
    assert {ex.repeats for ex in data.train} == {5} and data.validation[0].repeats == 1
    ex = data.train[1]
    assert ex.size == (48, 80)
    assert ex.time_ids() == [160, 96, 0, 0, 80, 48]  # original (h, w), crop (top, left), target (h, w)


def test_training_at_lower_resolution_scales_buckets_and_crops(tmp_path):
    root = write_tiny_dataset(tmp_path, n_train=2, n_val=0, sizes=((128, 128), (96, 160)))
    rows = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]
    rows[1]["crop_left"] = 16
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "metadata.jsonl.params.json").write_text(json.dumps({"params": {"base_resolution": 128}}))
    data = load_dataset(root, 64)
    assert [ex.size for ex in data.train] == [(64, 64), (48, 80)]
    assert data.train[1].crop == (8, 0)


def test_uncaptioned_images_fall_back_to_the_folder_prompt(tmp_path):
    root = write_tiny_dataset(tmp_path, n_train=2, n_val=0)
    rows = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]
    rows[0]["text"] = ""
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load_dataset(root, 64)
    assert data.train[0].caption == "ohwx woman" and data.uncaptioned == 1


def test_epoch_batches_one_size_per_batch_repeats_and_seeded_order(tmp_path):
    data = load_dataset(write_tiny_dataset(tmp_path, n_train=5, n_val=0, repeats=3, sizes=((64, 64), (48, 80))), 64)
    batches = epoch_batches(data.train, 2, seed=0, epoch=0)
    assert all(len({data.train[i].size for i in b}) == 1 for b in batches)
    assert sorted(i for b in batches for i in b) == sorted(list(range(5)) * 3)
    assert batches == epoch_batches(data.train, 2, seed=0, epoch=0)
    assert batches != epoch_batches(data.train, 2, seed=0, epoch=1)


def test_tag_frequency_per_folder(tmp_path):
    data = load_dataset(write_tiny_dataset(tmp_path, n_train=2, n_val=0), 64)
    freq = tag_frequency(data.train)
    assert freq == {"2_ohwx woman": {"ohwx woman": 2, "red dress": 1, "outdoors": 1, "smiling": 1, "close up": 1}}


def test_disk_cache_computes_once_and_survives_a_new_process(tmp_path):
    calls = []
    compute = lambda keys: calls.append(keys) or [{"x": torch.arange(3.0) + len(k[0])} for k in keys]  # noqa: E731
    keys = [("img", (64, 64)), ("image", (64, 64)), ("img", (64, 64))]
    first = DiskCache(tmp_path, "model-a").get_many(keys, compute)
    again = DiskCache(tmp_path, "model-a").get_many(keys, compute)  # fresh object: read from disk
    other = DiskCache(tmp_path, "model-b").get_many(keys[:1], compute)  # another model: recomputed
    assert calls == [keys[:2], keys[:1]]  # the missing keys once each, in one call
    assert torch.equal(first[0]["x"], again[0]["x"]) and torch.equal(first[0]["x"], other[0]["x"])
    assert torch.equal(first[1]["x"], torch.arange(3.0) + 5) and first[2] is first[0]


def test_vram_plan_reacts_to_the_memory_savers():
    counts = {"unet": 2_567_000_000, "vae": 83_600_000, "text_encoder": 123_000_000, "text_encoder_2": 695_000_000,
              "lora_unet": 23_000_000, "lora_text_encoders": 3_000_000}  # fmt: skip
    base = dict(resolution=1024, batch_size=1, mixed_precision="bf16", cache_latents=False, cache_text_embeddings=False,
                train_text_encoder=False, optimizer="adamw", gpu_gb=24.0)  # fmt: skip
    heavy = plan_vram(counts, gradient_checkpointing=False, **base)
    light = plan_vram(counts, gradient_checkpointing=True, **{**base, "cache_latents": True, "cache_text_embeddings": True})
    assert heavy.total_gb > light.total_gb + 6
    assert light.fits and "fits" in light.message
    small_gpu = plan_vram(counts, gradient_checkpointing=False, **{**base, "gpu_gb": 8.0})
    assert small_gpu.fits is False and small_gpu.message.startswith("WARNING")
    assert list(heavy.table.columns) == ["component", "GB", "assumption"]



def test_validation_batches_never_shuffle_captions(tmp_path):
    from pistachio_nb.models import load_sdxl_pipeline
    from pistachio_nb.training.captions import CaptionPolicy
    from pistachio_nb.training.features import Featurizer

    rng = random.Random(0)
    policy = CaptionPolicy(shuffle=True, tag_dropout=0.3, caption_dropout=0.2)
    feats = Featurizer(load_sdxl_pipeline("tiny:sdxl", device="cpu"), tmp_path, "m", False, False, policy, False, rng)
    caption = "ohwx woman, red dress, outdoors, smiling, close up"
    state = rng.getstate()
    fixed = feats.text([caption], vary=False)[0]
    assert rng.getstate() == state and torch.equal(fixed, feats.text([caption], vary=False)[0])
    feats.text([caption])  # training batches do shuffle, drawing from the saved random stream
    assert rng.getstate() != state


def test_vram_lora_count_matches_the_adapters_peft_creates():
    from pistachio_nb.models import load_sdxl_pipeline, resolve_model
    from pistachio_nb.training.sdxl import TEXT_ENCODER_TARGETS, add_adapters, trainable_parameters
    from pistachio_nb.training.vram import meta_counts

    targets = ["to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2"]
    counts = meta_counts(resolve_model("tiny:sdxl"), 4, targets, TEXT_ENCODER_TARGETS, "locon")
    pipe = load_sdxl_pipeline("tiny:sdxl", device="cpu")
    trained = add_adapters(pipe, 4, 2.0, targets, True, "locon")
    assert counts["lora_unet"] == sum(p.numel() for p in trainable_parameters(trained[:1]))
    assert counts["lora_text_encoders"] == sum(p.numel() for p in trainable_parameters(trained[1:]))
    assert counts["unet"] == sum(p.numel() for p in pipe.unet.parameters()) - counts["lora_unet"]
