"""02_captioning params: captioner, post-processing, lint and the bulk edit.

Defaults live only in the notebook's `parameters` cell; each description equals that line's comment.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from ..params import NotebookParams


FLORENCE_CAPTION_TASKS = ("<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>")
TEMPLATE_FIELDS = ("class_word", "orientation")


class CaptioningParams(NotebookParams):
    notebook: ClassVar[str] = "02_captioning"

    trigger: str = Field(min_length=2, pattern=r"^\S+$", description="rare token that names the character; first in every caption")
    class_word: str = Field(min_length=1, description="what the character is (woman, man, dog...)")
    captioner: Literal["florence2", "blip2", "blip", "template"] = Field(description="which captioner writes the captions: florence2 | blip2 | blip | template")
    caption_model: str = Field(description="captioner model: hub id, local folder or tiny:captioner (unused by template)")
    task_prompt: str = Field(description="Florence-2 task token, or a BLIP/BLIP-2 text prompt (\"\" for none)")
    batch_size: int = Field(ge=1, le=256, description="images per generate() call (raise on a big GPU)")
    max_caption_length: int = Field(ge=1, le=1024, description="longest caption the model may write (max_new_tokens, in its own tokens)")
    num_beams: int = Field(ge=1, le=16, description="beam search width: 1 is greedy, 3 is usual for Florence-2")
    template: str = Field(min_length=1, description="template caption; may use {class_word} and {orientation}")
    fallback: Literal["none", "template"] = Field(description="none: stop when the model cannot load | template: write template captions instead")
    strip_phrases: list[str] = Field(description="phrases removed from model captions (traits the trigger should absorb)")
    replacements: dict[str, str] = Field(description="phrase -> replacement applied to model captions")
    overwrite: bool = Field(description="replace existing captions (old text backed up to dataset/caption_backups/)")
    base_model: str = Field(min_length=1, description="SDXL base whose CLIP tokenizer counts caption tokens: hub id, folder or tiny:sdxl")
    preview_count: int = Field(ge=0, le=24, description="images shown in the sample grid")
    find_text: str = Field(description="bulk edit: text to find in every caption (empty: no bulk edit)")
    replace_text: str = Field(description="bulk edit: what replaces find_text")
    apply_find_replace: bool = Field(description="write the bulk edit; False only previews it")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.captioner == "florence2" and self.task_prompt not in FLORENCE_CAPTION_TASKS:
            raise ValueError(f"task_prompt {self.task_prompt!r} is not a Florence-2 caption task; use one of {FLORENCE_CAPTION_TASKS}")
        try:
            self.template.format(**dict.fromkeys(TEMPLATE_FIELDS, ""))
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"template {self.template!r}: bad placeholder {err}; allowed: {TEMPLATE_FIELDS}") from None
        if any(not s.strip() for s in [*self.strip_phrases, *self.replacements]):
            raise ValueError("strip_phrases and replacements keys must not be empty strings")
        if self.trigger.lower() in (s.strip().lower() for s in self.strip_phrases):
            raise ValueError(f"strip_phrases contains the trigger {self.trigger!r}")
        if self.apply_find_replace and not self.find_text:
            raise ValueError("apply_find_replace is true but find_text is empty")
        return self
