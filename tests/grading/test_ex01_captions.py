"""Exercise 1: caption loading in both layouts, with skipped items counted."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from lab.data.captions import MAX_CAPTION_CHARS
from lab.errors import LabError


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (200, 30, 40)).save(path)


def _text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def cvpr(tmp_path: Path) -> Path:
    """b and a captioned (out of order on purpose), c without captions file, d with a blank one."""
    for name in "abcd":
        _image(tmp_path / "images" / f"{name}.jpg")
    _text(tmp_path / "captions" / "b.txt", "second  flower\n\n  has\tyellow petals \n")
    _text(tmp_path / "captions" / "a.txt", "first flower\nanother caption\n")
    _text(tmp_path / "captions" / "d.txt", "\n   \n")
    return tmp_path


@pytest.fixture
def original(tmp_path: Path) -> Path:
    """Two classes, three images; class folders name the label."""
    for i, cls in [(1, 2), (2, 1), (3, 2)]:
        _image(tmp_path / "jpg" / f"image_0000{i}.jpg")
        _text(
            tmp_path / "text_c10" / f"class_0000{cls}" / f"image_0000{i}.txt", f"caption of image {i}\nsecond of {i}\n"
        )
    return tmp_path


@pytest.mark.points(2)
def test_read_caption_file_cleans_and_drops_blank_lines(ex, tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("  a   red\tflower \n\n   \nwith five petals\n")
    assert ex.read_caption_file(path) == (["a red flower", "with five petals"], 0)


@pytest.mark.points(1)
def test_read_caption_file_cuts_long_lines(ex, tmp_path):
    path = tmp_path / "c.txt"
    path.write_text(("petal " * 100) + "\nshort one\n")
    captions, cut = ex.read_caption_file(path)
    assert cut == 1
    assert len(captions) == 2 and captions[1] == "short one"
    assert len(captions[0]) <= MAX_CAPTION_CHARS and captions[0].endswith("petal")


@pytest.mark.points(2)
def test_cvpr_layout_first_captions_sorted(ex, cvpr):
    result = ex.load_captions(cvpr)
    assert [it.image_path.name for it in result.items] == ["a.jpg", "b.jpg"]
    assert [it.captions for it in result.items] == [["first flower"], ["second flower"]]
    assert all(it.label == -1 for it in result.items)


@pytest.mark.points(1)
def test_cvpr_layout_all_captions(ex, cvpr):
    result = ex.load_captions(cvpr, "all")
    assert [it.captions for it in result.items] == [
        ["first flower", "another caption"],
        ["second flower", "has yellow petals"],
    ]


@pytest.mark.points(2)
def test_skipped_images_are_counted(ex, cvpr):
    skipped = ex.load_captions(cvpr).skipped
    assert skipped["image without caption file"] == 1
    assert skipped["empty caption file"] == 1
    assert all(n > 0 for n in skipped.values()), "zero counts must be dropped"


@pytest.mark.points(2)
def test_original_layout_with_labels(ex, original):
    result = ex.load_captions(original, "all")
    assert [it.image_path.name for it in result.items] == ["image_00001.jpg", "image_00002.jpg", "image_00003.jpg"]
    assert [it.label for it in result.items] == [1, 0, 1]  # class_00001 -> 0, class_00002 -> 1
    assert result.items[2].captions == ["caption of image 3", "second of 3"]


@pytest.mark.points(1)
def test_user_mistakes_raise_lab_error(ex, cvpr, tmp_path):
    with pytest.raises(LabError):
        ex.load_captions(cvpr, "some")
    with pytest.raises(LabError):
        ex.load_captions(tmp_path / "missing")
    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    (empty / "captions").mkdir()
    with pytest.raises(LabError):
        ex.load_captions(empty)
