"""Training-time captions: shuffle keeps the first keep_tokens tags, dropouts happen at their rates, all seeded."""

from __future__ import annotations

import random

from pistachio_nb.training.captions import CaptionPolicy

CAPTION = "ohwx woman, red dress, outdoors, smiling, close up, black hair"


def _draws(policy: CaptionPolicy, n: int = 400, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [policy.apply(CAPTION, rng) for _ in range(n)]


def test_shuffle_keeps_the_trigger_and_keep_tokens_first():
    shuffled = set(_draws(CaptionPolicy(shuffle=True, keep_tokens=1), 20))
    assert len(shuffled) > 1 and all(c.startswith("ohwx woman, ") for c in shuffled)
    two = set(_draws(CaptionPolicy(shuffle=True, keep_tokens=2), 20))
    assert len(two) > 1 and all(c.startswith("ohwx woman, red dress, ") for c in two)
    assert all(sorted(c.split(", ")) == sorted(CAPTION.split(", ")) for c in shuffled)  # the same tags, moved


def test_caption_and_tag_dropout_rates_and_the_trigger_is_never_dropped():
    dropped = _draws(CaptionPolicy(caption_dropout=0.25))
    assert 0.18 < dropped.count("") / len(dropped) < 0.32
    assert {c for c in dropped if c} == {CAPTION}  # no shuffle asked: kept captions are untouched
    tags = _draws(CaptionPolicy(tag_dropout=0.5))
    kept = sum(len(c.split(", ")) - 1 for c in tags) / (len(tags) * 5)
    assert 0.4 < kept < 0.6 and all(c.startswith("ohwx woman") for c in tags)


def test_same_seed_same_captions_other_seed_other_captions():
    policy = CaptionPolicy(shuffle=True, keep_tokens=1, tag_dropout=0.2, caption_dropout=0.1)
    assert _draws(policy, 50, seed=3) == _draws(policy, 50, seed=3)
    assert _draws(policy, 50, seed=3) != _draws(policy, 50, seed=4)
    assert not CaptionPolicy().active and CaptionPolicy().apply(CAPTION, random.Random(0)) == CAPTION
