import pytest
from PIL import Image

from lab.data.captions import MAX_CAPTION_CHARS, load_captions
from lab.errors import LabError


def _image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), "red").save(path)


def test_cvpr2016_layout_first_and_all(tmp_path):
    for i in range(3):
        _image(tmp_path / "images" / f"img{i}.jpg")
    (tmp_path / "captions").mkdir()
    (tmp_path / "captions" / "img0.txt").write_text("a red flower.\n\n  a   crimson bloom.\n")
    (tmp_path / "captions" / "img1.txt").write_text("\n \n")  # blank: skipped
    first = load_captions(tmp_path, "first")
    assert [it.captions for it in first.items] == [["a red flower."]]
    assert first.skipped == {"image without caption file": 1, "empty caption file": 1}
    assert load_captions(tmp_path, "all").items[0].captions == ["a red flower.", "a crimson bloom."]


def test_original_layout_gives_classes_and_finds_nested_folder(tmp_path):
    root = tmp_path / "extracted" / "flowers"
    for i, cls in [(1, 1), (2, 1), (3, 2)]:
        _image(root / "jpg" / f"image_{i:05d}.jpg")
        caption = root / "text_c10" / f"class_{cls:05d}" / f"image_{i:05d}.txt"
        caption.parent.mkdir(parents=True, exist_ok=True)
        caption.write_text("\n".join(f"caption {k} of {i}" for k in range(10)))
    result = load_captions(tmp_path / "extracted", "all")
    assert [it.label for it in result.items] == [0, 0, 1]
    assert all(len(it.captions) == 10 for it in result.items)


def test_over_long_caption_is_cut_at_a_word(tmp_path):
    _image(tmp_path / "images" / "a.jpg")
    (tmp_path / "captions").mkdir()
    (tmp_path / "captions" / "a.txt").write_text("petal " * 200)
    result = load_captions(tmp_path)
    caption = result.items[0].captions[0]
    assert len(caption) <= MAX_CAPTION_CHARS and caption.endswith("petal")
    assert result.skipped == {"over-long caption cut": 1}


def test_bad_folders_raise_clear_errors(tmp_path):
    with pytest.raises(LabError, match="data folder not found"):
        load_captions(tmp_path / "nope")
    with pytest.raises(LabError, match="neither images/\\+captions/ nor jpg/\\+text_c10/"):
        load_captions(tmp_path)
    (tmp_path / "images").mkdir()
    (tmp_path / "captions").mkdir()
    _image(tmp_path / "images" / "x.jpg")
    with pytest.raises(LabError, match="no captioned images"):
        load_captions(tmp_path)
    with pytest.raises(LabError, match="'first' or 'all'"):
        load_captions(tmp_path, "some")
