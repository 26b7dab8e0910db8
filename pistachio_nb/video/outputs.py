"""One finished clip on disk: the mp4 with the job's parameters in its tags, a webp preview, a contact sheet.

The mp4 a backend returns (ComfyUI's SaveVideo file, or the local pipeline's) is remuxed, never re-encoded,
so its quality is the server's; only the container tags change (ComfyUI's own `prompt` tag is kept).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_path, write_sidecar
from .local import contact_sheet, write_webp


def decode(data: bytes) -> tuple[np.ndarray, dict[str, str], float]:
    """mp4 bytes -> (frames (n, h, w, 3) uint8, container tags, frames per second)."""
    import av

    with av.open(io.BytesIO(data)) as box:
        fps = float(box.streams.video[0].average_rate or 16)
        return np.stack([f.to_ndarray(format="rgb24") for f in box.decode(video=0)]), dict(box.metadata), fps


def retag(data: bytes, dest: str | Path, tags: dict[str, str]) -> Path:
    """Write `data` (an mp4) to `dest` with `tags` added to its container tags, packets copied as they are."""
    import av

    with av.open(io.BytesIO(data)) as src, atomic_path(dest) as tmp:
        with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "use_metadata_tags"}) as out:
            out.metadata.update({**src.metadata, **tags})
            stream = out.add_stream_from_template(src.streams.video[0])
            for packet in src.demux(src.streams.video[0]):
                if packet.dts is not None:  # the flush packet has none
                    packet.stream = stream
                    out.mux(packet)
    return Path(dest)


def save_clip(data: bytes, folder: Path, stem: str, params: dict[str, Any]) -> dict[str, Path]:
    """`<stem>.mp4` (params JSON in its `comment` tag, + `.params.json` sidecar), `<stem>.webp`, `<stem>_sheet.png`."""
    frames, _, fps = decode(data)
    mp4 = retag(data, folder / f"{stem}.mp4", {"title": str(params.get("prompt", ""))[:200],
                                                "comment": json.dumps(params, default=str)})
    return {
        "mp4": mp4,
        "sidecar": write_sidecar(mp4, params, frames=int(len(frames)), fps=fps),
        "webp": write_webp(frames, folder / f"{stem}.webp", max(1, round(fps))),
        "sheet": contact_sheet(frames, folder / f"{stem}_sheet.png", str(params.get("prompt", ""))),
    }
