"""Local video backend: start image + motion prompt + seed -> frames through diffusers' Wan2.2 I2V pipeline.

The same `WanImageToVideoPipeline.from_pretrained(path)` call loads the tiny CPU model (video/tiny.py)
and the real Wan-AI/Wan2.2-I2V-A14B-Diffusers weights. Outputs: an mp4 (PyAV, H.264) with the
parameters in its metadata tags and a `.params.json` sidecar, an animated webp preview, and a contact
sheet of the first, middle and last frames. Every file is written atomically.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import InputDataError, ModelLoadError
from ..files import atomic_path, write_sidecar


@dataclass(frozen=True)
class VideoRequest:
    """One clip: defaults follow the Wan2.2 README/configs (81 frames, 16 fps, 832x480 for the A14B)."""

    image: str
    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    frames: int = 81  # wan/configs/shared_config.py frame_num = 81 (4k+1: the VAE packs 4 frames per latent)
    width: int = 832
    height: int = 480
    steps: int = 40  # wan/configs/wan_i2v_A14B.py sample_steps
    guidance: float = 3.5  # wan/configs/wan_i2v_A14B.py sample_guide_scale
    fps: int = 16  # wan/configs/shared_config.py sample_fps
    max_sequence_length: int = 512  # shared_config.py text_len


def load_pipeline(path: str | Path):
    """`WanImageToVideoPipeline.from_pretrained(path)` on the CPU (float32), with a clear error for a bad folder."""
    from diffusers import WanImageToVideoPipeline

    if not (Path(path) / "model_index.json").is_file():
        raise ModelLoadError(
            f"no Wan pipeline at {path} (model_index.json missing)", fix="build it with video.tiny.build_wan_i2v"
        )
    return WanImageToVideoPipeline.from_pretrained(path)


def encode_prompt(pipe, text: str, max_len: int):
    """UMT5 embeddings exactly as diffusers' `_get_t5_prompt_embeds` (pad, encode, zero past the prompt).

    Done here because that method needs `ftfy` for prompt cleaning, which is not installed.
    """
    import torch

    tok = pipe.tokenizer([text], padding="max_length", max_length=max_len, truncation=True, return_tensors="pt")
    with torch.no_grad():
        emb = pipe.text_encoder(tok.input_ids, tok.attention_mask).last_hidden_state
    return emb * tok.attention_mask.unsqueeze(-1).to(emb.dtype)


def generate(pipe, req: VideoRequest) -> np.ndarray:
    """Run the pipeline; returns uint8 frames shaped (frames, height, width, 3)."""
    import torch
    from PIL import Image

    if req.frames < 1 or (req.frames - 1) % 4:
        raise InputDataError(
            f"frames={req.frames}", fix="use 4k+1 frames (e.g. 17, 49, 81): Wan's VAE packs 4 per latent"
        )
    if not Path(req.image).is_file():
        raise InputDataError(f"start image {req.image} not found", fix="pass an existing image path")
    image = Image.open(req.image).convert("RGB").resize((req.width, req.height))
    out = pipe(
        image=image, prompt_embeds=encode_prompt(pipe, req.prompt, req.max_sequence_length),
        negative_prompt_embeds=encode_prompt(pipe, req.negative_prompt, req.max_sequence_length),
        height=req.height, width=req.width, num_frames=req.frames, num_inference_steps=req.steps,
        guidance_scale=req.guidance, generator=torch.Generator().manual_seed(req.seed), output_type="np",
    ).frames[0]  # fmt: skip
    return (np.clip(out, 0.0, 1.0) * 255).round().astype(np.uint8)


def write_mp4(frames: np.ndarray, dest: str | Path, fps: int, metadata: dict[str, str]) -> Path:
    """H.264 mp4 via PyAV, `metadata` in the container's tags (any key: movflags use_metadata_tags, as ComfyUI's SaveVideo)."""
    import av

    with atomic_path(dest) as tmp, av.open(str(tmp), mode="w", format="mp4", options={"movflags": "use_metadata_tags"}) as box:
        box.metadata.update(metadata)
        stream = box.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            box.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        box.mux(stream.encode())
    return Path(dest)


def read_mp4(path: str | Path) -> tuple[np.ndarray, dict[str, str]]:
    """Decode an mp4 back to (frames, height, width, 3) uint8 and its metadata tags."""
    import av

    with av.open(str(path)) as box:
        return np.stack([f.to_ndarray(format="rgb24") for f in box.decode(video=0)]), dict(box.metadata)


def write_webp(frames: np.ndarray, dest: str | Path, fps: int) -> Path:
    """Animated webp preview (Pillow), looping."""
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    with atomic_path(dest) as tmp:
        images[0].save(tmp, format="WEBP", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return Path(dest)


def contact_sheet(frames: np.ndarray, dest: str | Path, title: str = "") -> Path:
    """First / middle / last frame side by side (matplotlib), to judge motion and drift at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = {"first": 0, "middle": len(frames) // 2, "last": len(frames) - 1}
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))
    for ax, (name, i) in zip(axes, picks.items()):
        ax.imshow(frames[i])
        ax.set_title(f"{name} (frame {i})")
        ax.axis("off")
    fig.suptitle(title[:80])
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    return Path(dest)


def make_video(pipe, req: VideoRequest, out_dir: str | Path, stem: str) -> dict[str, Path]:
    """Generate one clip and write `<stem>.mp4` (+ sidecar), `<stem>.webp` and `<stem>_sheet.png`."""
    frames = generate(pipe, req)
    out_dir = Path(out_dir)
    params = asdict(req)
    tags = {"title": req.prompt[:200], "comment": json.dumps(params)}
    mp4 = write_mp4(frames, out_dir / f"{stem}.mp4", req.fps, tags)
    return {
        "mp4": mp4,
        "sidecar": write_sidecar(mp4, params, frames=int(len(frames)), backend="diffusers-local"),
        "webp": write_webp(frames, out_dir / f"{stem}.webp", req.fps),
        "sheet": contact_sheet(frames, out_dir / f"{stem}_sheet.png", req.prompt),
    }
