"""Caption post-processing: replacements, stripped phrases, tidy punctuation, trigger word first.

Order matters: replacements run before stripping (so a replacement can rescue a phrase), and the
trigger is added last so nothing can remove or move it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping


def phrase_pattern(phrase: str) -> re.Pattern[str]:
    """Case-insensitive whole-word match of `phrase`, any run of whitespace between its words."""
    words = [re.escape(w) for w in phrase.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def apply_replacements(text: str, replacements: Mapping[str, str]) -> str:
    """Replace each phrase (whole words, any case) by its replacement; longest phrases first."""
    for phrase in sorted(replacements, key=len, reverse=True):
        text = phrase_pattern(phrase).sub(lambda _m, new=replacements[phrase]: new, text)  # literal, no \1 escapes
    return text


def strip_phrases(text: str, phrases: Iterable[str]) -> str:
    """Remove each phrase (whole words, any case); longest first so 'long red hair' beats 'red hair'."""
    for phrase in sorted(phrases, key=len, reverse=True):
        text = phrase_pattern(phrase).sub(" ", text)
    return text


def tidy(text: str) -> str:
    """One space between words, no space before punctuation, no doubled or dangling commas/periods."""
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    text = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", text)  # ", ," left behind by a stripped phrase
    text = re.sub(r"\.(?:\s*\.)+", ".", text)
    text = re.sub(r"([,;:])\s*\.", ".", text)
    text = re.sub(r"([,;])(?=\w)", r"\1 ", text)
    return text.strip(" ,;:").strip()


def with_trigger(text: str, trigger: str) -> str:
    """`"<trigger>, <caption>"`: the trigger leads, and appears nowhere else in the caption."""
    rest = tidy(phrase_pattern(trigger).sub(" ", text))
    return f"{trigger}, {rest}" if rest else trigger


def postprocess(text: str, trigger: str, strip: Iterable[str] = (), replacements: Mapping[str, str] | None = None) -> str:
    """A raw model caption -> the caption written to disk."""
    text = apply_replacements(text, replacements or {})
    return with_trigger(tidy(strip_phrases(text, strip)), trigger)
