"""LoRA tools: resize by SVD keeps the energy the full SVD predicts; merge into a ComfyUI-layout checkpoint equals
base + LoRA on the tiny SDXL; bad inputs are refused naming the file; `pistachio lora` runs end to end."""

import json
import subprocess
import sys

import pytest
import torch
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_open_clip_checkpoint
from peft import LoraConfig
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from pistachio_nb.errors import InputDataError
from pistachio_nb.lora import load_lora, set_lora_scale
from pistachio_nb.models import load_sdxl_pipeline
from pistachio_nb.training.export import lora_state_dicts, network_info, save_kohya
from pistachio_nb.training.lora_merge import TE1, TE2, UNET, Target, checkpoint_targets, merge_lora
from pistachio_nb.training.lora_tools import read_kohya, resize_lora

LINEAR, CONV = "lora_unet_down_blocks_1_attentions_0_proj_in", "lora_unet_down_blocks_0_resnets_0_conv1"


def write_lora(path, modules, alpha=8.0, **extra):
    """A kohya file of (down, up) factors per module name, with 03_training-like ss_* metadata."""
    tensors = {**extra}
    for name, (down, up) in modules.items():
        tensors |= {f"{name}.lora_down.weight": down, f"{name}.lora_up.weight": up, f"{name}.alpha": torch.tensor(alpha)}
    save_file(tensors, str(path), metadata={"ss_network_dim": "8", "ss_network_alpha": str(alpha), "ss_trigger": "ohwx"})
    return path


def factors(rank, out, inner, true_rank=None, seed=0):
    """Random (down, up); with `true_rank` the down rows span only that many directions (dW has that rank)."""
    g = torch.Generator().manual_seed(seed)
    down = torch.randn(true_rank or rank, *inner, generator=g)
    if true_rank:
        down = (torch.randn(rank, true_rank, generator=g) @ down.flatten(1)).reshape(rank, *inner)
    return down, torch.randn(out, rank, *[1] * (len(inner) - 1), generator=g)


def full_delta(down, up, alpha):
    return (up.flatten(1) @ down.flatten(1)).double() * alpha / down.shape[0]


def test_resize_keeps_the_energy_the_full_svd_predicts(tmp_path):
    modules = {LINEAR: factors(8, 32, (24,)), CONV: factors(8, 16, (16, 3, 3), seed=1)}
    src = write_lora(tmp_path / "char.safetensors", modules)
    result = resize_lora(src, tmp_path / "small.safetensors", rank=3)
    small = read_kohya(tmp_path / "small.safetensors")
    kept = total = 0.0
    for name, (down, up) in modules.items():
        delta = full_delta(down, up, 8.0)
        sigma = torch.linalg.svdvals(delta)
        share = float((sigma[:3] ** 2).sum() / (sigma**2).sum())
        assert result.modules[name].energy == pytest.approx(share, rel=1e-6) and share < 0.99
        new = small.modules[name]
        assert new.rank == 3 and new.alpha == 3.0 and new.down.shape[1:] == down.shape[1:]
        error = torch.linalg.matrix_norm(new.delta().double() - delta)  # Eckart-Young: the discarded sigmas
        assert float(error) == pytest.approx(float((sigma[3:] ** 2).sum().sqrt()), rel=1e-4)
        kept, total = kept + float((sigma[:3] ** 2).sum()), total + float((sigma**2).sum())
    assert result.energy == pytest.approx(kept / total, rel=1e-6)
    [row] = result.summary()
    assert row | {"energy": 0} == {"part": "unet", "modules": 2, "rank_before": "8", "rank_after": "3", "energy": 0,
                                   "lowest_energy": round(min(r.energy for r in result.modules.values()), 4)}  # fmt: skip
    assert row["energy"] == pytest.approx(result.energy, abs=1e-4)
    meta = safe_open(str(tmp_path / "small.safetensors"), "pt").metadata()
    assert meta["ss_network_dim"] == meta["ss_network_alpha"] == "3" and meta["ss_trigger"] == "ohwx"
    assert json.loads(meta["pistachio_resize"])["energy_kept"] == pytest.approx(result.energy, abs=1e-6)


def test_a_truly_low_rank_lora_resizes_losslessly(tmp_path):
    src = write_lora(tmp_path / "char.safetensors", {LINEAR: factors(8, 32, (24,), true_rank=3)})
    result = resize_lora(src, tmp_path / "small.safetensors", rank=3)
    assert result.energy > 1 - 1e-9
    (down, up), new = factors(8, 32, (24,), true_rank=3), read_kohya(tmp_path / "small.safetensors").modules[LINEAR]
    delta = full_delta(down, up, 8.0)
    assert float((new.delta().double() - delta).abs().max()) < 1e-4 * float(delta.abs().max())


def test_dynamic_rank_is_the_smallest_reaching_the_energy(tmp_path):
    modules = {LINEAR: factors(8, 32, (24,)), CONV: factors(8, 16, (16, 3, 3), true_rank=2, seed=1)}
    result = resize_lora(write_lora(tmp_path / "char.safetensors", modules), tmp_path / "dyn.safetensors", rank=6, energy=0.9)
    for name, (down, up) in modules.items():
        sigma = torch.linalg.svdvals(full_delta(down, up, 8.0))
        share = torch.cumsum(sigma**2, 0) / (sigma**2).sum()
        expected = min(6, int(torch.nonzero(share >= 0.9)[0]) + 1)
        assert result.modules[name].module.rank == expected and result.modules[name].energy >= 0.9
    assert result.modules[CONV].module.rank <= 2 < result.modules[LINEAR].module.rank


def test_refusals_name_the_file(tmp_path):
    src = write_lora(tmp_path / "char.safetensors", {LINEAR: factors(4, 32, (24,))})
    with pytest.raises(InputDataError, match=r"rank 4 is not below the rank of .*char.safetensors \(4\)"):
        resize_lora(src, tmp_path / "out.safetensors", rank=4)
    with pytest.raises(InputDataError, match="is the input file"):
        resize_lora(src, src, rank=2)
    taken = tmp_path / "taken.safetensors"
    taken.write_bytes(b"the user's own file")
    with pytest.raises(InputDataError, match="taken.safetensors already exists"):
        resize_lora(src, taken, rank=2)
    assert taken.read_bytes() == b"the user's own file"
    dora = write_lora(tmp_path / "dora.safetensors", {LINEAR: factors(4, 32, (24,))}, **{f"{LINEAR}.dora_scale": torch.ones(32, 1)})
    with pytest.raises(InputDataError, match=r"dora.safetensors is a DoRA file; only lora and locon"):
        resize_lora(dora, tmp_path / "out.safetensors", rank=2)
    loha = tmp_path / "loha.safetensors"
    save_file({f"{LINEAR}.hada_w1_a": torch.ones(2, 2), f"{LINEAR}.alpha": torch.tensor(1.0)}, str(loha))
    with pytest.raises(InputDataError, match=r"loha.safetensors is a LoHa file"):
        read_kohya(loha)
    other = tmp_path / "diffusers.safetensors"
    save_file({"unet.down_blocks.0.lora_A.weight": torch.ones(2, 2)}, str(other))
    with pytest.raises(InputDataError, match=r"diffusers.safetensors is not a kohya LoRA"):
        read_kohya(other)
    (tmp_path / "notes.safetensors").write_text("not tensors")
    with pytest.raises(InputDataError, match=r"notes.safetensors is not a readable .safetensors file"):
        read_kohya(tmp_path / "notes.safetensors")
    with pytest.raises(InputDataError, match=r"char.safetensors is not a single-file SDXL checkpoint"):
        merge_lora(src, src, tmp_path / "merged.safetensors")
    assert not (tmp_path / "out.safetensors").exists() and not (tmp_path / "merged.safetensors").exists()


# ----------------------------------------------------------------- merge: a ComfyUI-layout tiny SDXL checkpoint
RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1", "norm2": "out_layers.0",
          "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}  # fmt: skip
TOP = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2", "conv_in": "input_blocks.0.0",
       "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2", "conv_norm_out": "out.0",
       "conv_out": "out.2", "mid_block.attentions.0": "middle_block.1"}  # fmt: skip


def ldm_unet_key(key, layers, up_attention):
    """The test's own diffusers -> LDM renaming (checked against diffusers' converter below)."""
    for new, old in TOP.items():
        if key.startswith(new + "."):
            return old + key[len(new) :]
    parts = key.split(".")
    if parts[0] == "mid_block":  # mid_block.resnets.j.<resnet key>
        return f"middle_block.{2 * int(parts[2])}." + ".".join([RESNET.get(parts[3], parts[3]), *parts[4:]])
    kind, level, sub, j, rest = parts[0], int(parts[1]), parts[2], int(parts[3]), parts[4:]
    if sub == "resnets":
        rest = [RESNET.get(rest[0], rest[0]), *rest[1:]]
    if kind == "down_blocks":
        if sub == "downsamplers":
            return f"input_blocks.{(level + 1) * (layers + 1)}.0.op." + ".".join(rest[1:])
        return f"input_blocks.{1 + level * (layers + 1) + j}.{0 if sub == 'resnets' else 1}." + ".".join(rest)
    if sub == "upsamplers":
        return f"output_blocks.{level * (layers + 1) + layers}.{2 if level in up_attention else 1}." + ".".join(rest)
    return f"output_blocks.{level * (layers + 1) + j}.{0 if sub == 'resnets' else 1}." + ".".join(rest)


OPENCLIP = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "self_attn.out_proj": "attn.out_proj", "mlp.fc1": "mlp.c_fc",
            "mlp.fc2": "mlp.c_proj"}  # fmt: skip


def openclip_state(te2) -> dict:
    """CLIP-bigG-shaped weights in OpenCLIP's layout, as SDXL single files hold them (q/k/v stacked)."""
    sd, out = te2.state_dict(), {}
    out["token_embedding.weight"] = sd["text_model.embeddings.token_embedding.weight"]
    out["positional_embedding"] = sd["text_model.embeddings.position_embedding.weight"]
    out["ln_final.weight"], out["ln_final.bias"] = sd["text_model.final_layer_norm.weight"], sd["text_model.final_layer_norm.bias"]
    out["text_projection"] = sd["text_projection.weight"].T.contiguous()
    for i in range(te2.config.num_hidden_layers):
        src, dst = f"text_model.encoder.layers.{i}.", f"transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[dst + f"attn.in_proj_{kind}"] = torch.cat([sd[src + f"self_attn.{p}_proj.{kind}"] for p in "qkv"])
            out |= {dst + f"{new}.{kind}": sd[src + f"{old}.{kind}"] for old, new in OPENCLIP.items()}
    return out


def ldm_unet(unet) -> dict:
    """The UNet's weights under single-file (LDM) keys, checked by converting back with diffusers."""
    state, config = unet.state_dict(), unet.config
    up_attention = {i for i, kind in enumerate(config.up_block_types) if "CrossAttn" in kind}
    out = {UNET + ldm_unet_key(k, config.layers_per_block, up_attention): v for k, v in state.items()}
    back = convert_ldm_unet_checkpoint(out, dict(config))
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)  # the test's layout is SDXL's
    return out


def test_unet_names_match_an_sdxl_shaped_unet():
    """SDXL's shape (3 levels, 2 res blocks each, 1/2/10-deep transformers: here 1/2/3), tiny channels."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(
        block_out_channels=(16, 32, 32), layers_per_block=2, norm_num_groups=8, attention_head_dim=(2, 4, 4),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), transformer_layers_per_block=(1, 2, 3),
        cross_attention_dim=32, use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 16,
    )  # fmt: skip
    ldm = ldm_unet(unet)
    targets = checkpoint_targets(ldm)
    by_weight = {v: k for k, v in zip(unet.state_dict(), ldm)}  # LDM key -> diffusers key
    for key in (k for k in ldm if k.endswith(".weight")):
        assert targets["lora_unet_" + by_weight[key][: -len(".weight")].replace(".", "_")] == Target(key)
        assert targets["lora_unet_" + key[len(UNET) : -len(".weight")].replace(".", "_")] == Target(key)  # kohya sd-scripts' names


def tiny_checkpoint(pipe) -> dict:
    """The tiny SDXL pipeline as one ComfyUI-layout state dict (UNet, both text encoders, VAE passed through)."""
    out = ldm_unet(pipe.unet)
    out |= {TE1 + "text_model." + k: v for k, v in pipe.text_encoder.state_dict().items()}  # SDXL files keep text_model.
    out |= {TE2 + k: v for k, v in openclip_state(pipe.text_encoder_2).items()}
    return out | {"first_stage_model." + k: v for k, v in pipe.vae.state_dict().items()}


def load_checkpoint(pipe, checkpoint) -> None:
    """Load a ComfyUI-layout state dict into the pipeline with diffusers' own single-file converters."""
    pipe.unet.load_state_dict(convert_ldm_unet_checkpoint(checkpoint, dict(pipe.unet.config)))
    te1 = TE1 + "text_model."
    pipe.text_encoder.load_state_dict({k[len(te1) :]: v for k, v in checkpoint.items() if k.startswith(te1)})
    pipe.text_encoder_2.load_state_dict(convert_open_clip_checkpoint(pipe.text_encoder_2, checkpoint, prefix=TE2))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny single-file SDXL checkpoint and a kohya locon LoRA (UNet linears + convs, both text encoders) on it."""
    folder = tmp_path_factory.mktemp("merge")
    pipe = load_sdxl_pipeline("tiny:sdxl", "cpu")
    save_file(tiny_checkpoint(pipe), str(folder / "tiny-sdxl.safetensors"), metadata={"modelspec.title": "tiny"})
    g = torch.manual_seed(0)  # peft draws lora_A from the global generator: the same file every run
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=8, target_modules=["to_q", "to_k", "to_v", "to_out.0", "conv1", "proj_in"]))
    te = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"])
    pipe.text_encoder.add_adapter(te)
    pipe.text_encoder_2.add_adapter(te)
    for module in (pipe.unet, pipe.text_encoder, pipe.text_encoder_2):
        for name, param in module.named_parameters():
            if "lora_B" in name:
                param.data = 0.2 * torch.randn(param.shape, generator=g)  # trained-like: a visible update
    info = {**network_info("locon"), "network_dim": 4, "network_alpha": 8}
    save_kohya(folder / "char.safetensors", lora_state_dicts(pipe), 4, 8.0, torch.float32, info)
    return folder


def render(pipe):
    out = pipe("ohwx woman", num_inference_steps=2, width=64, height=64, guidance_scale=5.0, output_type="np",
               generator=torch.Generator().manual_seed(3))  # fmt: skip
    return torch.from_numpy(out.images)


def test_merge_equals_base_plus_lora(files):
    base, lora = files / "tiny-sdxl.safetensors", files / "char.safetensors"
    result = merge_lora(base, lora, files / "merged.safetensors", scale=0.7)
    assert set(result.merged) == {"unet", "te1", "te2"} and sum(result.merged.values()) == len(read_kohya(lora).modules)
    merged, original = load_file(str(files / "merged.safetensors")), load_file(str(base))
    assert merged.keys() == original.keys()
    vae = [k for k in original if k.startswith("first_stage_model.")]
    assert all(torch.equal(merged[k], original[k]) for k in vae)
    assert safe_open(str(files / "merged.safetensors"), "pt").metadata()["pistachio_merged_lora"] == "char.safetensors at scale 0.7"

    reference = load_sdxl_pipeline("tiny:sdxl", "cpu")
    load_lora(reference, lora)
    set_lora_scale(reference, 0.7)
    baked = load_sdxl_pipeline("tiny:sdxl", "cpu")
    load_checkpoint(baked, merged)
    plain = load_sdxl_pipeline("tiny:sdxl", "cpu")
    with torch.no_grad():
        want, got, without = render(reference), render(baked), render(plain)
    assert float((want - without).abs().max()) > 0.05  # the LoRA changes the picture
    assert float((want - got).abs().max()) < 1e-4


def test_cli_resize_and_merge(files, tmp_path):
    cli = [sys.executable, "-m", "pistachio_nb.cli", "lora"]
    run = lambda *args: subprocess.run([*cli, *map(str, args)], capture_output=True, text=True, timeout=300)  # noqa: E731
    done = run("resize", files / "char.safetensors", tmp_path / "r2.safetensors", "--rank", "2")
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()[:-1]
    assert header.split() == ["part", "modules", "rank_before", "rank_after", "energy", "lowest_energy"]
    assert sorted(r.split()[0] for r in rows) == ["te1", "te2", "unet"] and all(r.split()[2:4] == ["4", "2"] for r in rows)
    assert "energy kept" in done.stdout.splitlines()[-1]
    assert read_kohya(tmp_path / "r2.safetensors").rank == 2
    done = run("resize", files / "char.safetensors", tmp_path / "r9.safetensors", "--rank", "9")
    assert done.returncode == 1 and "char.safetensors" in done.stderr and "fix: give --rank between 1 and 3" in done.stderr
    done = run("merge", files / "tiny-sdxl.safetensors", tmp_path / "r2.safetensors", tmp_path / "m.safetensors", "--scale", "0.5")
    assert done.returncode == 0, done.stderr
    assert "modules_merged" in done.stdout and (tmp_path / "m.safetensors").is_file()
