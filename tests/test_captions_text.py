"""Caption text rules without any dataset: post-processing, lint findings, params validation."""

from __future__ import annotations

import pytest

from pistachio_nb.captions.captioners import TemplateCaptioner, drop_prompt_echo, orientation
from pistachio_nb.captions.lint import lint_captions, lint_summary, load_clip_tokenizer, token_count, trigger_pieces
from pistachio_nb.captions.postprocess import postprocess, tidy, with_trigger
from pistachio_nb.errors import ModelLoadError, ParamsError
from pistachio_nb.captions import CaptioningParams
from PIL import Image


@pytest.fixture(scope="module")
def tokenizer():
    return load_clip_tokenizer("tiny:sdxl")


def test_trigger_goes_first_and_only_once():
    assert with_trigger("a woman standing", "ohwx") == "ohwx, a woman standing"
    assert with_trigger("A photo of OHWX, smiling", "ohwx") == "ohwx, A photo of, smiling"
    assert with_trigger("ohwxy smiling", "ohwx") == "ohwx, ohwxy smiling"  # whole words only
    assert with_trigger("  ", "ohwx") == "ohwx"


def test_postprocess_replaces_then_strips_then_tidies():
    raw = "The image shows a girl with long red hair , smiling ,  outdoors.."
    out = postprocess(raw, "ohwx", strip=["the image shows", "long red hair", "red hair"], replacements={"girl": "woman"})
    assert out == "ohwx, a woman with, smiling, outdoors."
    assert "girls" in postprocess("two girls", "ohwx", replacements={"girl": "woman"})  # whole words only
    assert postprocess("a girl", "ohwx", replacements={"girl": r"wo\1man"}) == r"ohwx, a wo\1man"  # literal text


def test_tidy_leaves_numbers_and_fixes_dangling_commas():
    assert tidy(" , 1.5 m tall ,, standing ,. ") == "1.5 m tall, standing."


def test_template_captioner_says_only_class_and_orientation():
    cap = TemplateCaptioner("a photo of a {class_word}, {orientation} shot", "woman")
    got = cap.caption([Image.new("RGB", (40, 80)), Image.new("RGB", (80, 40)), Image.new("RGB", (50, 50))])
    assert got == [f"a photo of a woman, {o} shot" for o in ("portrait", "landscape", "square")]
    assert orientation(Image.new("RGB", (100, 97))) == "square"


def test_prompt_echo_is_dropped_case_insensitively():
    assert drop_prompt_echo("A photo of a woman smiling", "a photo of") == "a woman smiling"
    assert drop_prompt_echo("a woman smiling", "a photo of") == "a woman smiling"


def test_token_count_includes_start_and_end(tokenizer):
    assert token_count(tokenizer, "a photo of ohwx woman") == 7
    assert tokenizer.model_max_length == 77


def test_lint_flags_each_problem(tokenizer):
    long = "ohwx, " + " ".join(["woman smiling outdoors"] * 30)
    rows = [
        {"file_name": "ok.png", "split": "train", "text": "ohwx, a woman smiling"},
        {"file_name": "late.png", "split": "train", "text": "a photo of ohwx smiling"},
        {"file_name": "none.png", "split": "train", "text": "a woman"},
        {"file_name": "empty.png", "split": "train", "text": ""},
        {"file_name": "long.png", "split": "train", "text": long},
        {"file_name": "dup1.png", "split": "validation", "text": "ohwx, red hair"},
        {"file_name": "dup2.png", "split": "train", "text": "OHWX, red hair"},
    ]
    table = lint_captions(rows, "ohwx", tokenizer, strip=["red hair"]).set_index("file_name")
    assert table.loc["ok.png", "problems"] == "" and table.loc["ok.png", "trigger_first"]
    assert table.loc["late.png", "problems"] == "trigger not first" and not table.loc["late.png", "trigger_first"]
    assert table.loc["none.png", "problems"] == "trigger missing"
    assert table.loc["empty.png", "problems"].startswith("empty")
    assert table.loc["long.png", "tokens"] > 77
    assert f"truncated: {table.loc['long.png', 'tokens']} tokens > 77" in table.loc["long.png", "problems"]
    assert "duplicate caption" in table.loc["dup1.png", "problems"]
    assert "stripped phrase present: 'red hair'" in table.loc["dup2.png", "problems"]
    summary = lint_summary(table.reset_index()).set_index("problem")["captions"]
    assert summary["(none)"] == 1 and summary["duplicate caption"] == 2 and summary["truncated"] == 1


def test_missing_base_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="base_model .*no usable CLIP tokenizer"):
        load_clip_tokenizer(str(tmp_path))


def _values(**over):
    base = dict(
        workspace="outputs/x", trigger="ohwx", class_word="woman", captioner="florence2", caption_model="tiny:captioner",
        task_prompt="<DETAILED_CAPTION>", batch_size=2, max_caption_length=8, num_beams=1, template="a {class_word}",
        fallback="none", strip_phrases=[], replacements={}, overwrite=False, base_model="tiny:sdxl",
        preview_count=2, find_text="", replace_text="", apply_find_replace=False,
    )  # fmt: skip
    return {**base, **over}


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"task_prompt": "<OD>"}, "not a Florence-2 caption task"),
        ({"template": "a {hair} {class_word}"}, "bad placeholder"),
        ({"strip_phrases": ["OHWX"]}, "contains the trigger"),
        ({"replacements": {" ": "x"}}, "must not be empty"),
        ({"apply_find_replace": True}, "find_text is empty"),
        ({"captioner": "llava"}, "captioner"),
    ],
)
def test_bad_params_are_refused_by_name(over, message):
    with pytest.raises(ParamsError, match=message):
        CaptioningParams.validate_values(_values(**over))


def test_blip_prompt_need_not_be_a_task_token():
    assert CaptioningParams.validate_values(_values(captioner="blip", task_prompt="a photo of")).task_prompt == "a photo of"


def test_trigger_pieces_show_how_clip_splits_a_rare_word(tokenizer):
    assert tokenizer.tokenize("woman") == ["woman</w>"]  # a known word is one token
    pieces = trigger_pieces(tokenizer, "pstchio")
    assert len(pieces) > 1 and "".join(pieces).replace("</w>", "") == "pstchio"
