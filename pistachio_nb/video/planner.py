"""VRAM planner for Wan2.2 video on the pod: does it fit beside SDXL + InstantID + IP-Adapter, or swap?

Sources (cited per constant below): the Wan2.2 README and configs (github.com/Wan-Video/Wan2.2,
`README.md`, `wan/configs/*.py`), ComfyUI's Wan2.2 examples (github.com/comfyanonymous/ComfyUI_examples
`wan22/README.md`: the Comfy-Org repackaged fp16/fp8 files), ComfyUI 0.3.64 `server.py` (`POST /free`).
Figures marked ESTIMATE are this planner's own arithmetic, not measured; calibrate them on the pod.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..errors import ParamsError

GB = 1024**3
# Bytes per weight. fp16/bf16: 2; fp8 (e4m3fn "fp8_scaled" files in ComfyUI's Wan2.2 examples): 1;
# GGUF Q8_0 = 34 bytes per 32 weights, Q4_K_M ~4.85 bits/weight (ggml quant formats; ComfyUI loads
# them with city96's ComfyUI-GGUF `UnetLoaderGGUF` node, a custom node, not built in).
BYTES_PER_WEIGHT = {"fp16": 2.0, "fp8": 1.0, "gguf_q8": 34 / 32, "gguf_q4": 4.85 / 8}
# Text encoder precision used with each diffusion precision: ComfyUI's examples ship only
# umt5_xxl_fp8_e4m3fn_scaled for Wan2.2, so fp8 everywhere except the all-fp16 row.
TE_BYTES = {"fp16": 2.0, "fp8": 1.0, "gguf_q8": 1.0, "gguf_q4": 1.0}
UMT5_XXL_PARAMS = 5.7e9  # ESTIMATE: UMT5-XXL encoder half (~11.4 GB as fp16 in Comfy-Org's repackage)
TEXT_LEN = 512  # wan/configs/shared_config.py: text_len = 512
OVERHEAD_GB = 1.0  # ESTIMATE: CUDA context, cuBLAS/attention workspaces, allocator fragmentation
USABLE_FRACTION = 0.95  # ESTIMATE: leave 5% of the card free for the allocator


@dataclass(frozen=True)
class WanModel:
    """One Wan2.2 model as ComfyUI runs it; architecture figures from wan/configs/<name>.py."""

    name: str
    params_per_expert: float  # README "Each expert model has about 14B parameters"; TI2V-5B: 5B
    experts: int  # A14B: high-noise + low-noise experts (README, MoE section); 5B: one dense model
    dim: int
    ffn_dim: int
    vae_stride: tuple[int, int, int]  # (t, h, w) latent compression
    patch: tuple[int, int, int]  # DiT patchify
    vae_params: float  # ESTIMATE from the repackaged VAE files (wan_2.1_vae / wan2.2_vae)


WAN_MODELS: dict[str, WanModel] = {
    # wan/configs/wan_i2v_A14B.py and wan_t2v_A14B.py: dim 5120, ffn_dim 13824, vae_stride (4, 8, 8),
    # patch_size (1, 2, 2), boundary 0.900 (i2v) between the experts; ComfyUI pairs it with wan_2.1_vae.
    "i2v-A14B": WanModel("i2v-A14B", 14e9, 2, 5120, 13824, (4, 8, 8), (1, 2, 2), 0.127e9),
    "t2v-A14B": WanModel("t2v-A14B", 14e9, 2, 5120, 13824, (4, 8, 8), (1, 2, 2), 0.127e9),
    # wan/configs/wan_ti2v_5B.py: dim 3072, ffn_dim 14336, vae_stride (4, 16, 16), patch (1, 2, 2);
    # README: Wan2.2-VAE compresses 4x16x16; ComfyUI pairs it with wan2.2_vae.
    "ti2v-5B": WanModel("ti2v-5B", 5e9, 1, 3072, 14336, (4, 16, 16), (1, 2, 2), 0.7e9),
}

# ESTIMATE: what the image stage keeps loaded in ComfyUI (fp16): SDXL UNet 2.6B params (5.1 GB),
# CLIP-L + OpenCLIP-bigG text encoders (1.6 GB), SDXL VAE (0.2 GB), InstantID ControlNet (2.5 GB) and
# its ip-adapter.bin (1.7 GB), IP-Adapter FaceID Plus v2 SDXL (1.5 GB), insightface antelopev2 (0.4 GB).
SDXL_STACK_GB = 5.1 + 1.6 + 0.2 + 2.5 + 1.7 + 1.5 + 0.4
# ESTIMATE: activation bytes per DiT token in one block at fp16 (q, k, v, attention out, residuals
# ~6 x dim plus the FFN hidden), flash attention (no T x T matrix); x2 for cond + uncond batched.
# ESTIMATE: Wan's causal VAE decodes chunk by chunk in time, so its working set scales with the
# pixels of one chunk: ~10 kB per output pixel untiled; ComfyUI's tiled decode caps it at a 512 px tile.
VAE_BYTES_PER_PIXEL = 10_000
VAE_TILE_PIXELS = 512 * 512


def act_bytes_per_token(m: WanModel) -> int:
    """ESTIMATE (see above): fp16 bytes one DiT token holds at the activation peak, cond + uncond."""
    return (6 * m.dim + m.ffn_dim) * 2 * 2


def latent_tokens(model: WanModel, frames: int, width: int, height: int) -> int:
    """DiT sequence length: (1 + (frames-1)/t) latent frames x (h/8/2) x (w/8/2) patches (README, configs)."""
    st, sh, sw = model.vae_stride
    pt, ph, pw = model.patch
    return (1 + (frames - 1) // st) // pt * (height // sh // ph) * (width // sw // pw)


@dataclass(frozen=True)
class VideoPlan:
    """The VRAM estimate for one configuration and its verdict on one GPU."""

    model: str
    precision: str
    offload: bool
    tiled_vae: bool
    weights_gb: float  # the experts resident at the peak (one when offloading, all otherwise)
    activations_gb: float
    vae_decode_gb: float
    text_encoder_gb: float
    peak_gb: float
    sdxl_stack_gb: float
    gpu_gb: float
    verdict: str  # "fits" (beside SDXL), "swap" (free SDXL first), "does not fit"


def plan_video(
    model: str, precision: str, frames: int, width: int, height: int, gpu_gb: float,
    offload: bool = True, tiled_vae: bool = True, sdxl_stack_gb: float = SDXL_STACK_GB,
) -> VideoPlan:  # fmt: skip
    """Peak VRAM over the phases (encode text, sample each expert, decode) and the verdict for `gpu_gb`."""
    if model not in WAN_MODELS:
        raise ParamsError(f"unknown Wan model {model!r}", fix=f"use one of {sorted(WAN_MODELS)}")
    if precision not in BYTES_PER_WEIGHT:
        raise ParamsError(f"unknown precision {precision!r}", fix=f"use one of {sorted(BYTES_PER_WEIGHT)}")
    if frames < 1 or (frames - 1) % 4 or width % 16 or height % 16 or min(width, height) <= 0:
        raise ParamsError(
            f"frames={frames} size={width}x{height}",
            fix="frames = 4k+1 (e.g. 81), width/height multiples of 16 (the 5B model rounds down to 32)",
        )
    m = WAN_MODELS[model]
    expert = m.params_per_expert * BYTES_PER_WEIGHT[precision] / GB
    te = UMT5_XXL_PARAMS * TE_BYTES[precision] / GB
    vae_w = m.vae_params * 2 / GB
    act = latent_tokens(m, frames, width, height) * act_bytes_per_token(m) / GB
    out_frames = frames * width * height * 3 * 4 / GB  # decoded float32 frames held until saved
    decode = min(width * height, VAE_TILE_PIXELS if tiled_vae else width * height) * VAE_BYTES_PER_PIXEL / GB
    decode += out_frames
    if offload:  # ComfyUI loads one model per phase and moves the rest to RAM
        weights = expert
        phases = [te, expert + act, vae_w + decode]
    else:  # everything resident; the experts swap nothing
        weights = expert * m.experts
        resident = te + weights + vae_w
        phases = [resident + act, resident + decode]
    peak = max(phases) + OVERHEAD_GB
    usable = gpu_gb * USABLE_FRACTION
    verdict = "fits" if peak + sdxl_stack_gb <= usable else "swap" if peak <= usable else "does not fit"
    r = lambda x: round(x, 2)  # noqa: E731
    return VideoPlan(model, precision, offload, tiled_vae, r(weights), r(act), r(decode), r(te), r(peak),
                     r(sdxl_stack_gb), float(gpu_gb), verdict)  # fmt: skip


def plan_table(
    frames: int, width: int, height: int, gpu_gb: float, models: tuple[str, ...] = ("i2v-A14B", "ti2v-5B")
) -> pd.DataFrame:
    """Every model x precision x offload x tiled-VAE configuration for one clip size on one GPU."""
    rows = [
        plan_video(m, p, frames, width, height, gpu_gb, offload=o, tiled_vae=t).__dict__
        for m in models for p in BYTES_PER_WEIGHT for o in (False, True) for t in (False, True)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def swap_plan(plan: VideoPlan, server: str = "http://127.0.0.1:8188") -> list[str]:
    """The steps the verdict asks for: ComfyUI 0.3.64 server.py `POST /free` takes unload_models/free_memory."""
    if plan.verdict == "fits":
        return [f"keep the SDXL stack loaded; queue the Wan workflow on {server}/prompt"]
    if plan.verdict == "does not fit":
        return [f"{plan.model} {plan.precision} needs ~{plan.peak_gb} GB on a {plan.gpu_gb:g} GB GPU: "
                "use offloading, tiled VAE decode, a lower precision, fewer frames or a smaller size"]  # fmt: skip
    return [
        f'POST {server}/free {{"unload_models": true, "free_memory": true}}  # drop SDXL + InstantID + IP-Adapter',
        f"queue the Wan workflow on {server}/prompt (ComfyUI loads the {plan.model} weights on demand)",
        f'after the video jobs: POST {server}/free {{"unload_models": true, "free_memory": true}}; image jobs resume',
    ]
