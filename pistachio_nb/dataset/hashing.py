"""Perceptual hashes of a small grayscale copy, as 16 hex digits: pHash computed here in numpy (bit for bit
what `imagehash.phash` gives on the same image, without importing scipy into every decoding worker), the
other imagehash algorithms through imagehash itself.

Hashing the reduced-scale decode directly (no further resize before the hash's own 32x32 Lanczos) keeps a
file's hash within 2 bits of plain imagehash on the full image (tests/test_dataset_hashing.py).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

PHASH_SIDE = 32  # imagehash.phash: hash_size 8 x highfreq_factor 4
HASH_SIDE = 8


def _dct_rows(n: int, k: int) -> np.ndarray:
    """The first `k` rows of the unnormalised DCT-II matrix of size `n` (scipy.fftpack.dct's default)."""
    return 2.0 * np.cos(np.pi * np.arange(k)[:, None] * (2 * np.arange(n)[None, :] + 1) / (2 * n))


DCT = _dct_rows(PHASH_SIDE, HASH_SIDE)


def bits_hex(bits: np.ndarray) -> str:
    """A boolean hash array as hex, the same text as `str(imagehash.ImageHash(bits))`."""
    return np.packbits(bits.flatten()).tobytes().hex()


def phash_hex(image: Image.Image) -> str:
    """pHash: 32x32 Lanczos grey, low 8x8 DCT coefficients, each compared with their median."""
    pixels = np.asarray(image.convert("L").resize((PHASH_SIDE, PHASH_SIDE), Image.Resampling.LANCZOS), dtype=np.float64)
    low = DCT @ pixels @ DCT.T
    return bits_hex(low > np.median(low))


def perceptual_hash(image: Image.Image, algorithm: str) -> str:
    """Hex hash of `image` by `algorithm` (phash | dhash | ahash | whash)."""
    if algorithm == "phash":
        return phash_hex(image)
    import imagehash  # only the non-default algorithms need it

    hashers = {"dhash": imagehash.dhash, "ahash": imagehash.average_hash, "whash": imagehash.whash}
    return bits_hex(hashers[algorithm](image).hash)
