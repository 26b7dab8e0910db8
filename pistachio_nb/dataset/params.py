"""01_dataset params: source folder, dedup, quality gates, split and buckets.

Defaults live only in the notebook's `parameters` cell; each description equals that line's comment.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from ..params import NotebookParams


class DatasetParams(NotebookParams):
    notebook: ClassVar[str] = "01_dataset"

    input_paths: ClassVar[dict[str, str]] = {"source_dir": "dir"}

    source_dir: Path = Field(description="folder of the character's images (read only, searched recursively)")
    trigger: str = Field(min_length=2, pattern=r"^\S+$", description="rare token that will name the character in captions and prompts")
    class_word: str = Field(min_length=1, pattern=r"^[^/\\]+$", description="what the character is (woman, man, dog...): kohya folder name and captions")
    repeats: int = Field(ge=1, le=1000, description="kohya repeats: how many times each training image is seen per epoch")
    dedup_algorithm: Literal["phash", "dhash", "ahash", "whash"] = Field(description="imagehash perceptual hash: phash | dhash | ahash | whash")
    dedup_threshold: int = Field(ge=0, le=32, description="max Hamming distance (bits out of 64) for two images to count as near-duplicates")
    min_side: int = Field(ge=8, description="refuse images whose shorter side is below this many pixels")
    max_pixels: int = Field(ge=64 * 64, description="refuse images above this many pixels (decompression-bomb guard)")
    alpha_background: str = Field(description="colour that transparent pixels become: a name (white) or #rrggbb")
    blur_threshold: float = Field(ge=0, description="flag images whose blur score (Laplacian variance) is below this")
    validation_ratio: float = Field(ge=0, le=0.5, description="share of near-duplicate clusters held out for validation")
    split_seed: int = Field(ge=0, description="seed of the deterministic train/validation split")
    base_resolution: int = Field(ge=64, le=2048, multiple_of=64, description="bucket base side in pixels: 1024 for SDXL on the pod, tiny for the CPU demo")
    workers: int = Field(ge=0, le=256, description="decoding processes; 0 means every core")
    face_embedder: str = Field(description="face model that keeps the dataset one person: sface, arcface:<pack or folder>, or none (not a person)")
    face_anchors: list[str] = Field(description="photos of the character (under source_dir, or absolute); empty: the largest group of one face")
    crop: Literal["centre", "face"] = Field(description="how an image is cropped into its bucket: centre, or face (the face kept in frame)")

    @model_validator(mode="after")
    def _sizes_consistent(self) -> Self:
        from PIL import ImageColor

        try:
            ImageColor.getrgb(self.alpha_background)
        except ValueError:
            raise ValueError(f"alpha_background {self.alpha_background!r} is not a colour (try white or #ffffff)") from None
        if self.min_side * self.min_side > self.max_pixels:
            raise ValueError(f"min_side {self.min_side} squared exceeds max_pixels {self.max_pixels}")
        return self
