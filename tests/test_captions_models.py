"""Every model captioner family runs through the one loading + generate path, on tiny random models.

Florence-2 is the foundation's `tiny:captioner`; BLIP and BLIP-2 are built here from small configs
(real architectures, locally generated tokenizers) and saved, then loaded by path like on the pod.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pistachio_nb import tiny_models
from pistachio_nb.captions.captioners import load_model_captioner
from pistachio_nb.errors import ModelLoadError

VISION = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8)


def _images(n: int = 2) -> list[Image.Image]:
    return [Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 30, 3), dtype=np.uint8)) for i in range(n)]


def build_blip(dest: Path) -> Path:
    """BlipForConditionalGeneration + BlipProcessor with a 14-word BERT vocabulary."""
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    dest.mkdir(parents=True)
    words = "[PAD] [UNK] [CLS] [SEP] [MASK] a photo of woman red hair smiling standing outdoors".split()
    (dest / "vocab.txt").write_text("\n".join(words) + "\n")
    tok = BertTokenizer(str(dest / "vocab.txt"))
    tok.add_special_tokens({"bos_token": "[DEC]"})
    text = dict(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                max_position_embeddings=64, encoder_hidden_size=16, bos_token_id=tok.bos_token_id,
                sep_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id, eos_token_id=tok.sep_token_id)  # fmt: skip
    torch.manual_seed(0)
    BlipForConditionalGeneration(BlipConfig(text_config=text, vision_config=VISION, projection_dim=16)).save_pretrained(dest)
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok).save_pretrained(dest)
    return dest


def build_blip2(dest: Path) -> Path:
    """Blip2ForConditionalGeneration (ViT + Q-Former + OPT) + Blip2Processor with a byte-level BPE."""
    from transformers import Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, BlipImageProcessor, GPT2Tokenizer

    tiny_models.write_bpe_files(dest / "tok", ["<pad>", "</s>", "<unk>", "<image>"], prefix="Ġ")
    tok = GPT2Tokenizer(str(dest / "tok" / "vocab.json"), str(dest / "tok" / "merges.txt"),
                        bos_token="</s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")  # fmt: skip
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    config = Blip2Config(
        vision_config=VISION, num_query_tokens=4, image_token_index=tok.convert_tokens_to_ids("<image>"),
        qformer_config=dict(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                            num_attention_heads=2, encoder_hidden_size=16),
        text_config=dict(model_type="opt", vocab_size=len(tok), hidden_size=16, ffn_dim=32, num_hidden_layers=1,
                         num_attention_heads=2, word_embed_proj_dim=16, max_position_embeddings=64,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id),
    )  # fmt: skip
    torch.manual_seed(0)
    Blip2ForConditionalGeneration(config).save_pretrained(dest / "model")
    processor = Blip2Processor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok, num_query_tokens=4)
    processor.save_pretrained(dest / "model")
    return dest / "model"


@pytest.fixture(scope="module")
def blip_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("captioners")
    return {"blip": str(build_blip(root / "blip")), "blip2": str(build_blip2(root / "blip2"))}


@pytest.mark.parametrize("family", ["blip", "blip2"])
def test_blip_families_caption_and_drop_the_prompt_echo(blip_models, family):
    images = _images()
    cap = load_model_captioner(family, blip_models[family], "a photo of", max_new_tokens=6, num_beams=1, device="cpu")
    inputs = cap.processor(images=images, text=["a photo of"] * 2, return_tensors="pt")
    raw = cap.processor.batch_decode(cap.model.generate(**inputs, max_new_tokens=6, do_sample=False), skip_special_tokens=True)
    assert all(r.startswith("a photo of") for r in raw)  # the model repeats its prompt ...
    assert cap.caption(images) == [r[len("a photo of") :].strip() for r in raw]  # ... and the captioner drops it
    unprompted = load_model_captioner(family, blip_models[family], "", max_new_tokens=6, num_beams=1, device="cpu")
    assert len(unprompted.caption(images)) == 2


def test_florence2_caption_is_the_task_answer_without_special_tokens():
    cap = load_model_captioner("florence2", "tiny:captioner", "<CAPTION>", max_new_tokens=8, num_beams=2, device="cpu")
    images = _images(3)
    got = cap.caption(images)
    assert len(got) == 3 and all(t and "<" not in t and t == t.strip() for t in got)
    assert cap.model.dtype == torch.float32  # CPU: full precision


def test_family_mismatch_is_refused(blip_models):
    with pytest.raises(ModelLoadError, match="is a 'blip-2' model, but captioner is 'blip'"):
        load_model_captioner("blip", blip_models["blip2"], "", max_new_tokens=4, num_beams=1, device="cpu")
