"""The demo data generator: deterministic, varied, with near-duplicates and unusable files."""

import io

import imagehash
import pytest
from PIL import Image

from pistachio_nb.errors import InputDataError
from pistachio_testkit.demo_data import demo_files, make_demo_images


@pytest.fixture(scope="module")
def files():
    return demo_files(seed=0)


def test_same_seed_same_bytes_other_seed_differs(files):
    assert demo_files(seed=0) == files
    other = demo_files(seed=1)
    assert other.keys() == files.keys()
    assert other["scene_00.jpg"] != files["scene_00.jpg"]


def _image(data):
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def test_sizes_aspects_and_formats_vary(files):
    images = {k: _image(v) for k, v in files.items() if not k.startswith("broken/") and not k.endswith(".txt")}
    aspects = {round(im.width / im.height, 2) for im in images.values()}
    assert len(aspects) >= 5 and min(aspects) < 0.6 and max(aspects) > 1.7
    assert {im.format for im in images.values()} == {"JPEG", "PNG", "WEBP"}
    assert {"RGBA", "P", "CMYK", "I;16"} <= {im.mode for im in images.values()}


def test_near_duplicates_are_close_and_scenes_are_not(files):
    h = {k: imagehash.phash(_image(v).convert("RGB")) for k, v in files.items() if k.startswith(("scene_", "copies/"))}
    for copy in ("copies/scene_00_resized.jpg", "copies/scene_00_reencoded.jpg", "copies/scene_00_brighter.png"):
        assert h["scene_00.jpg"] - h[copy] <= 4
    assert h["scene_00.jpg"] - h["scene_01.jpg"] > 10


def test_unusable_files_do_not_decode(files):
    with pytest.raises(OSError):
        _image(files["broken/truncated.jpg"])
    with pytest.raises(OSError):
        _image(files["broken/notes_not_an_image.jpg"])


def test_writes_folder_and_refuses_non_empty(tmp_path):
    written = make_demo_images(tmp_path / "src")
    assert {p.relative_to(tmp_path / "src").as_posix() for p in written} == set(demo_files(seed=0))
    with pytest.raises(InputDataError, match="not empty"):
        make_demo_images(tmp_path / "src")


def test_concurrent_generation_keeps_one_complete_folder(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    dest = tmp_path / "shared"
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda _: _try_make(dest), range(2)))
    assert all(o == "ok" or "not empty" in o for o in outcomes) and "ok" in outcomes
    assert {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()} == set(demo_files(seed=0))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left behind


def _try_make(dest):
    try:
        make_demo_images(dest)
        return "ok"
    except InputDataError as err:
        return str(err)
