"""Put text metadata into PNG bytes without re-encoding the pixels (iTXt chunks, UTF-8).

Keys follow what tools already read: `prompt` (ComfyUI API graph, drag-and-drop reloads it),
`parameters` (A1111/civitai style prompt + settings), plus our own `pistachio` job record.
"""

from __future__ import annotations

import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT_CHUNKS = (b"tEXt", b"iTXt", b"zTXt")


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file (bad signature)")
    chunks, pos = [], len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunks.append((kind, data[pos + 8:pos + 8 + length]))
        pos += 12 + length
        if kind == b"IEND":
            break
    return chunks


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _keyword(kind: bytes, body: bytes) -> str:
    return body.split(b"\0", 1)[0].decode("latin-1") if kind in TEXT_CHUNKS else ""


def with_text(data: bytes, texts: dict[str, str]) -> bytes:
    """PNG bytes with `texts` as iTXt chunks (replacing same-named text chunks), pixels untouched."""
    chunks = [(k, b) for k, b in _chunks(data) if _keyword(k, b) not in texts]
    extra = [_chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8")) for key, value in texts.items()]
    out = [PNG_SIGNATURE]
    for kind, body in chunks:
        if kind == b"IEND":
            out += extra
        out.append(_chunk(kind, body))
    return b"".join(out)


def a1111_parameters(prompt: str, negative: str, steps: int, cfg: float, seed: int, width: int, height: int,
                     model: str, lora: str = "", lora_strength: float = 1.0) -> str:
    """The `parameters` text A1111 writes (civitai and many viewers parse it)."""
    lora_tag = f" <lora:{lora.rsplit('.', 1)[0]}:{lora_strength:g}>" if lora else ""
    return (f"{prompt}{lora_tag}\nNegative prompt: {negative}\n"
            f"Steps: {steps}, CFG scale: {cfg:g}, Seed: {seed}, Size: {width}x{height}, Model: {model}")
