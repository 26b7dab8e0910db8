"""Tiny randomly initialised models of the real architectures, built offline from configs.

They let every model-using path (SDXL LoRA training, captioning, CLIP/DINOv2 metrics) run on a
CPU with no download: each builder saves with `save_pretrained`, and callers load the folder
with the same `from_pretrained(path)` code that loads the real models on the pod. Sizes are
chosen for speed, not quality; shapes follow the real models (SDXL's two text encoders feeding
a text-time UNet, a VAE that downsamples 8x, a 77-token CLIP tokenizer).
"""

from __future__ import annotations

import json
from collections import Counter
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from tokenizers import pre_tokenizers

SEED = 0
VERSION = 1  # bump when a builder changes, so cached folders under outputs/models are rebuilt
CLIP_MAX_LENGTH = 77

# Words that get a whole-word token; anything else falls back to byte-level pieces, as in real BPE.
WORDS = (
    "a an the of in on with and at photo portrait picture image woman man person girl boy face "
    "smiling standing sitting red blue green black white hair dress shirt outdoors indoors "
    "background light close up full body ohwx sks character style"
).split()


# --------------------------------------------------------------------------- tokenizers
def _byte_alphabet() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for raw bytes (sorted for determinism)."""
    return sorted(pre_tokenizers.ByteLevel.alphabet())


def _merge_pair(seq: list[str], pair: tuple[str, str]) -> list[str]:
    out: list[str] = []
    for piece in seq:
        if out and (out[-1], piece) == pair:
            out[-1] += piece
        else:
            out.append(piece)
    return out


def learn_merges(words: Iterable[str], suffix: str = "", prefix: str = "") -> list[tuple[str, str]]:
    """Classic BPE training on `words` (most frequent pair first) until each word is one token."""
    seqs = [[*([prefix] if prefix else []), *w[:-1], w[-1] + suffix] for w in words]
    merges: list[tuple[str, str]] = []
    while counts := Counter(pair for seq in seqs for pair in zip(seq, seq[1:])):
        pair = max(counts, key=lambda p: (counts[p], p))  # ties broken by the pair itself: deterministic
        merges.append(pair)
        seqs = [_merge_pair(seq, pair) for seq in seqs]
    return merges


def write_bpe_files(folder: Path, special: list[str], suffix: str = "", prefix: str = "") -> int:
    """Write `vocab.json` + `merges.txt` for a byte-level BPE; returns the vocabulary size."""
    vocab: dict[str, int] = {}
    for token in [*special, *_byte_alphabet(), *(c + suffix for c in _byte_alphabet() if suffix)]:
        vocab.setdefault(token, len(vocab))
    merges = learn_merges(WORDS, suffix=suffix, prefix=prefix)
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2", *(f"{a} {b}" for a, b in merges)]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(vocab)


def clip_tokenizer(workdir: Path):
    """A CLIPTokenizer read from locally generated vocab.json/merges.txt (77 tokens, like SDXL's)."""
    from transformers import CLIPTokenizer

    write_bpe_files(workdir, ["<|startoftext|>", "<|endoftext|>"], suffix="</w>")
    return CLIPTokenizer.from_pretrained(workdir, model_max_length=CLIP_MAX_LENGTH)


def bart_tokenizer(workdir: Path, **special_tokens: str):
    """A BART (RoBERTa byte-level) tokenizer from locally generated files, with extra named tokens."""
    from transformers import BartTokenizer

    names = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", *special_tokens.values()]
    write_bpe_files(workdir, names, prefix="Ġ")
    return BartTokenizer.from_pretrained(workdir, **special_tokens)


# --------------------------------------------------------------------------- builders
def _clip_text_config(vocab_size: int, projection_dim: int = 32):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=CLIP_MAX_LENGTH, projection_dim=projection_dim,
        bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_act="gelu",
    )  # fmt: skip


def build_sdxl(dest: Path, workdir: Path) -> None:
    """SDXL pipeline folder: text-time UNet, 8x VAE, CLIP-L/bigG-shaped text encoders, Euler scheduler."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = clip_tokenizer(workdir / "tok")
    text_cfg = _clip_text_config(len(tokenizer))
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, norm_num_groups=8,
        block_out_channels=(16, 32), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
        transformer_layers_per_block=(1, 1), use_linear_projection=True,
        cross_attention_dim=2 * text_cfg.hidden_size,  # both encoders' hidden states, concatenated
        addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + text_cfg.projection_dim,  # 6 time ids + pooled text
    )  # fmt: skip
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=8, sample_size=64,
        block_out_channels=(8, 16, 16, 16), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, scaling_factor=0.13025,
    )  # fmt: skip
    scheduler = EulerDiscreteScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        steps_offset=1, timestep_spacing="leading", prediction_type="epsilon",
    )  # fmt: skip
    pipe = StableDiffusionXLPipeline(
        vae=vae, text_encoder=CLIPTextModel(text_cfg), text_encoder_2=CLIPTextModelWithProjection(text_cfg),
        tokenizer=tokenizer, tokenizer_2=tokenizer, unet=unet, scheduler=scheduler,
    )
    pipe.save_pretrained(dest)


def build_captioner(dest: Path, workdir: Path) -> None:
    """Florence-2 (DaViT vision tower + BART) with its processor, like microsoft/Florence-2 on the pod."""
    from transformers import CLIPImageProcessorPil, Florence2Config, Florence2ForConditionalGeneration, Florence2Processor

    tokenizer = bart_tokenizer(workdir / "tok", image_token="<image>")
    image_size, patch_stride = 32, 4
    image_processor = CLIPImageProcessorPil(
        size={"height": image_size, "width": image_size}, do_center_crop=False,
        image_seq_length=(image_size // patch_stride) ** 2 + 1,  # patches + the pooled image token
    )  # fmt: skip
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<s>", "<pad>", "</s>", "<image>")}
    config = Florence2Config(
        text_config={
            "model_type": "bart", "vocab_size": len(tokenizer), "d_model": 16, "max_position_embeddings": 128,
            "encoder_layers": 1, "decoder_layers": 1, "encoder_ffn_dim": 32, "decoder_ffn_dim": 32,
            "encoder_attention_heads": 2, "decoder_attention_heads": 2, "bos_token_id": ids["<s>"],
            "pad_token_id": ids["<pad>"], "eos_token_id": ids["</s>"], "decoder_start_token_id": ids["</s>"],
            "forced_eos_token_id": ids["</s>"],
        },
        vision_config={
            "depths": [1], "patch_size": [7], "patch_stride": [patch_stride], "patch_padding": [3],
            "patch_prenorm": [False], "embed_dim": [16], "num_heads": [2], "num_groups": [2],
            "window_size": 4, "projection_dim": 16, "drop_path_rate": 0.0,
        },
        image_token_id=ids["<image>"],
    )  # fmt: skip
    model = Florence2ForConditionalGeneration(config)
    # A random decoder babbles byte fragments or stops at once; limiting it to whole words (no
    # repeats, at least 4) makes demo captions readable. Only this tiny model's generation config.
    words = {tokenizer.convert_tokens_to_ids("Ġ" + w) for w in WORDS} | {ids["</s>"]}
    gen = model.generation_config
    gen.suppress_tokens = sorted(set(range(len(tokenizer))) - words)
    gen.min_new_tokens, gen.max_new_tokens, gen.no_repeat_ngram_size = 4, 12, 1
    model.save_pretrained(dest)
    parse_rules = {"pure_text": {}, "ocr": {}, "phrase_grounding": {}, "description_with_bboxes": {},
                   "description_with_polygons": {}, "polygons": {}, "bboxes": {},
                   "description_with_bboxes_or_polygons": {}}  # fmt: skip
    Florence2Processor(
        image_processor=image_processor, tokenizer=tokenizer, post_processor_config=parse_rules
    ).save_pretrained(dest)


def build_clip(dest: Path, workdir: Path) -> None:
    """CLIPModel + CLIPProcessor: text and image embeddings for CLIP-T / CLIP-I scores."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    tokenizer = clip_tokenizer(workdir / "tok")
    config = CLIPConfig(
        text_config=_clip_text_config(len(tokenizer)).to_dict(),
        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                       "num_attention_heads": 4, "image_size": 32, "patch_size": 8},
        projection_dim=32,
    )  # fmt: skip
    CLIPModel(config).save_pretrained(dest)
    processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(dest)


def build_dinov2(dest: Path, workdir: Path) -> None:
    """Dinov2Model + its image processor: identity embeddings for the DINO similarity metric."""
    from transformers import BitImageProcessorPil, Dinov2Config, Dinov2Model

    config = Dinov2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=2, image_size=32, patch_size=8
    )
    Dinov2Model(config).save_pretrained(dest)
    BitImageProcessorPil(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, do_center_crop=True,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(dest)  # fmt: skip


def build_wan_i2v(dest: Path, work: Path) -> None:
    """Tiny Wan2.2 image-to-video pipeline (built in pistachio_nb/video/tiny.py, beside its stage)."""
    from .video.tiny import build_wan_i2v as build

    build(dest)


BUILDERS: dict[str, Callable[[Path, Path], None]] = {
    "sdxl": build_sdxl,
    "captioner": build_captioner,
    "clip": build_clip,
    "dinov2": build_dinov2,
    "wan_i2v": build_wan_i2v,
}


def build_tiny(kind: str, dest: str | Path, seed: int = SEED) -> Path:
    """Build tiny model `kind` into folder `dest` (created), deterministically from `seed`."""
    if kind not in BUILDERS:
        raise KeyError(kind)
    dest = Path(dest)
    with torch.random.fork_rng(devices=[]), tempfile.TemporaryDirectory(prefix="pistachio-tiny-") as work:
        torch.manual_seed(seed)
        BUILDERS[kind](dest, Path(work))
    return dest
