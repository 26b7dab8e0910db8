"""Captioners behind one small interface: `caption(images) -> texts`, for Florence-2, BLIP-2, BLIP and a template.

The model captioners share one code path (processor -> `generate` -> decode); only how the prompt is
given and read back differs per family. The tiny demo captioner is a real Florence-2, so the demo
runs exactly this code (its random weights just write word salad).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from PIL import Image

from ..errors import ModelLoadError
from ..models import load_captioner

# The `model_type` each captioner choice expects in the model's config.json.
MODEL_TYPES = {"florence2": "florence2", "blip2": "blip-2", "blip": "blip"}


class Captioner(Protocol):
    """Anything that turns a batch of RGB images into one caption each; `name` goes in the table."""

    name: str

    def caption(self, images: list[Image.Image]) -> list[str]: ...


def orientation(image: Image.Image) -> str:
    """portrait / landscape / square: the one thing a template can honestly say about an image."""
    w, h = image.size
    return "square" if abs(w - h) <= 0.05 * max(w, h) else ("portrait" if h > w else "landscape")


@dataclass
class TemplateCaptioner:
    """No model: the same sentence for every image (only orientation varies). A fallback, not a goal."""

    template: str
    class_word: str
    name: str = "template"

    def caption(self, images: list[Image.Image]) -> list[str]:
        return [self.template.format(class_word=self.class_word, orientation=orientation(im)) for im in images]


@dataclass
class ModelCaptioner:
    """A transformers image-to-text model: Florence-2 (task token prompt) or BLIP / BLIP-2 (optional text prefix)."""

    model: Any
    processor: Any
    family: str
    prompt: str
    max_new_tokens: int
    num_beams: int
    name: str

    @torch.inference_mode()
    def caption(self, images: list[Image.Image]) -> list[str]:
        text = [self.prompt] * len(images) if self.prompt else None
        inputs = self.processor(images=images, text=text, return_tensors="pt").to(self.model.device, self.model.dtype)
        out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, num_beams=self.num_beams, do_sample=False)
        if self.family == "florence2":
            raw = self.processor.batch_decode(out, skip_special_tokens=False)
            return [
                self.processor.post_process_generation(t, task=self.prompt, image_size=im.size)[self.prompt]
                for t, im in zip(raw, images)
            ]
        return [drop_prompt_echo(t, self.prompt) for t in self.processor.batch_decode(out, skip_special_tokens=True)]


def drop_prompt_echo(text: str, prompt: str) -> str:
    """BLIP-style models repeat a conditional prompt ("a photo of") at the start of their answer; drop it."""
    text = text.strip()
    if prompt and text.lower().startswith(prompt.strip().lower()):
        return text[len(prompt.strip()) :].strip()
    return text


def load_model_captioner(
    family: str, ref: str, prompt: str, max_new_tokens: int, num_beams: int, device: str | None = None
) -> ModelCaptioner:
    """Load `ref` via `models.load_captioner` and check it is the architecture `family` names."""
    model, processor = load_captioner(ref, device=device)
    found = getattr(model.config, "model_type", "?")
    if found != MODEL_TYPES[family]:
        raise ModelLoadError(
            f"caption_model {ref!r} is a {found!r} model, but captioner is {family!r} (expects {MODEL_TYPES[family]!r})",
            fix="set captioner to match the model, or point caption_model at a model of that family",
        )
    return ModelCaptioner(model, processor, family, prompt, max_new_tokens, num_beams, name=f"{family} {ref}")
