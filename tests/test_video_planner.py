"""The Wan2.2 VRAM planner's arithmetic: monotonic in clip size, precision and offload act as stated."""

import pytest

from pistachio_nb.errors import ParamsError
from pistachio_nb.video import plan_table, plan_video, swap_plan
from pistachio_nb.video.planner import SDXL_STACK_GB, latent_tokens, WAN_MODELS


@pytest.mark.parametrize("model", ["i2v-A14B", "ti2v-5B"])
def test_peak_grows_with_frames_and_resolution(model):
    peaks = [plan_video(model, "fp8", f, 832, 480, 80).peak_gb for f in (17, 49, 81, 121)]
    assert peaks == sorted(peaks) and peaks[0] < peaks[-1]
    sizes = [(512, 288), (832, 480), (1280, 720)]
    peaks = [plan_video(model, "fp8", 81, w, h, 80).peak_gb for w, h in sizes]
    assert peaks == sorted(peaks) and peaks[0] < peaks[-1]


def test_tokens_follow_the_configs_strides():
    # 81 frames at 1280x720 on the 14B: 21 latent frames x 45 x 80 patches (vae_stride 4,8,8; patch 1,2,2)
    assert latent_tokens(WAN_MODELS["i2v-A14B"], 81, 1280, 720) == 21 * 45 * 80
    assert latent_tokens(WAN_MODELS["ti2v-5B"], 121, 1280, 704) == 31 * 22 * 40


def test_fp8_halves_the_weights_and_offload_keeps_one_expert():
    fp16 = plan_video("i2v-A14B", "fp16", 81, 832, 480, 141, offload=False)
    fp8 = plan_video("i2v-A14B", "fp8", 81, 832, 480, 141, offload=False)
    assert fp8.weights_gb == pytest.approx(fp16.weights_gb / 2, abs=0.01)
    off = plan_video("i2v-A14B", "fp8", 81, 832, 480, 141, offload=True)
    assert off.weights_gb == pytest.approx(fp8.weights_gb / 2, abs=0.01)  # two experts -> one at a time
    assert off.peak_gb < fp8.peak_gb
    q4 = plan_video("i2v-A14B", "gguf_q4", 81, 832, 480, 141)
    assert q4.weights_gb < plan_video("i2v-A14B", "gguf_q8", 81, 832, 480, 141).weights_gb < fp16.weights_gb


def test_tiled_vae_never_raises_the_decode():
    for w, h in [(832, 480), (1280, 720)]:
        tiled = plan_video("ti2v-5B", "fp16", 121, w, h, 80, tiled_vae=True)
        full = plan_video("ti2v-5B", "fp16", 121, w, h, 80, tiled_vae=False)
        assert tiled.vae_decode_gb < full.vae_decode_gb and tiled.peak_gb <= full.peak_gb


def test_verdicts_at_the_gpu_sizes():
    verdict = lambda gpu, **kw: plan_video("i2v-A14B", "fp8", 81, 1280, 720, gpu, **kw).verdict  # noqa: E731
    assert verdict(24) == "does not fit"
    assert verdict(48) == "fits"  # fp8 with offload: one 13 GB expert beside the SDXL stack
    assert plan_video("i2v-A14B", "fp16", 81, 1280, 720, 48).verdict == "swap"  # alone yes, beside SDXL no
    assert verdict(80) == verdict(141) == "fits"
    assert plan_video("i2v-A14B", "fp16", 81, 1280, 720, 80, offload=False).verdict == "does not fit"
    assert plan_video("ti2v-5B", "fp8", 81, 832, 480, 24).verdict == "fits"
    p = plan_video("i2v-A14B", "fp16", 81, 1280, 720, 48)
    assert p.peak_gb <= 48 * 0.95 < p.peak_gb + SDXL_STACK_GB


def test_swap_plan_frees_comfyui_first():
    steps = swap_plan(plan_video("i2v-A14B", "fp16", 81, 1280, 720, 48))
    assert '/free {"unload_models": true, "free_memory": true}' in steps[0] and "/prompt" in steps[1]
    assert "keep the SDXL stack" in swap_plan(plan_video("ti2v-5B", "fp8", 81, 832, 480, 80))[0]
    assert "needs ~" in swap_plan(plan_video("i2v-A14B", "fp16", 81, 1280, 720, 24))[0]


def test_table_and_bad_input():
    table = plan_table(81, 832, 480, 24)
    assert len(table) == 2 * 4 * 2 * 2 and set(table.verdict) <= {"fits", "swap", "does not fit"}
    with pytest.raises(ParamsError, match="frames"):
        plan_video("i2v-A14B", "fp8", 80, 832, 480, 24)
    with pytest.raises(ParamsError, match="precision"):
        plan_video("i2v-A14B", "int3", 81, 832, 480, 24)
    with pytest.raises(ParamsError, match="model"):
        plan_video("wan9", "fp8", 81, 832, 480, 24)
