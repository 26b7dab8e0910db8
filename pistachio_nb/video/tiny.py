"""A tiny randomly initialised Wan2.2 image-to-video model, built offline, loaded like the real weights.

Same components as Wan-AI/Wan2.2-I2V-A14B-Diffusers and diffusers' `WanImageToVideoPipeline`
(diffusers 0.42 pipelines/wan/pipeline_wan_i2v.py): a UMT5 text encoder + tokenizer, the causal
`AutoencoderKLWan`, two `WanTransformer3DModel` experts (high noise `transformer`, low noise
`transformer_2`) switched at `boundary_ratio` (0.900 in wan/configs/wan_i2v_A14B.py), no CLIP image
encoder (Wan2.2 conditions on the VAE latent of the start image). Sizes follow diffusers' own tiny Wan2.2
test (tests/pipelines/wan/test_wan_22_image_to_video.py): chosen for CPU speed, not quality.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..tiny_models import SEED, WORDS

BOUNDARY_RATIO = 0.9  # wan/configs/wan_i2v_A14B.py: boundary = 0.900
TEXT_DIM = 32
Z_DIM = 16  # Wan2.1 VAE latent channels (the A14B models use wan_2.1_vae)


def _tokenizer():
    """A T5-style Unigram tokenizer (whole words from WORDS, as UMT5's SentencePiece) built with `tokenizers`."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import T5TokenizerFast

    pieces = ["<pad>", "</s>", "<unk>", *("\u2581" + w for w in dict.fromkeys(WORDS))]
    tok = Tokenizer(models.Unigram([(p, -1.0) for p in pieces], unk_id=2))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    return T5TokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", extra_ids=0)


def _transformer():
    """One tiny expert: in_channels = noise latent + 4 mask channels + start-image latent (pipeline_wan_i2v.py)."""
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=Z_DIM * 2 + 4,
        out_channels=Z_DIM, text_dim=TEXT_DIM, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
    )  # fmt: skip


def build_wan_i2v(dest: str | Path, seed: int = SEED) -> Path:
    """Build the tiny pipeline into `dest` (save_pretrained); load it with WanImageToVideoPipeline.from_pretrained."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanImageToVideoPipeline
    from transformers import UMT5Config, UMT5EncoderModel

    dest = Path(dest)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tokenizer = _tokenizer()
        text_encoder = UMT5EncoderModel(UMT5Config(
            vocab_size=len(tokenizer), d_model=TEXT_DIM, d_kv=8, d_ff=32, num_layers=2, num_heads=4,
            relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
        ))  # fmt: skip
        vae = AutoencoderKLWan(
            base_dim=3, z_dim=Z_DIM, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
        )
        # Wan's sampler: flow matching with shift 5.0 (wan/configs/wan_i2v_A14B.py sample_shift), UniPC as diffusers'
        scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0)
        pipe = WanImageToVideoPipeline(
            tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler,
            transformer=_transformer(), transformer_2=_transformer(), boundary_ratio=BOUNDARY_RATIO,
        )  # fmt: skip
        pipe.save_pretrained(dest)
    return dest
