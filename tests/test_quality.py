"""The quality ruler: a reader that reads real flowers right, honest evaluation captions, diversity that sees collapse.

The reader is trained once with the real settings (about 45 s on one CPU core: 20 s drawing,
25 s training) and shared by the tests of this file.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from lab.data.captions import load_captions
from lab.data.dataset import decode_image, split_indices
from lab.data.synthetic import COUNT_WORDS, draw_as_loaded, generate, random_attributes
from lab.errors import LabError
from lab.evaluation import quality


@pytest.fixture(scope="module")
def reader_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("quality-cache")


@pytest.fixture(scope="module")
def reader(reader_cache):
    """One torch thread, like the tiny training configs: on a shared 2-core CPU two threads take 2-3x longer."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield quality.load_reader(64, reader_cache, progress=False)
    finally:
        torch.set_num_threads(threads)


def test_draw_as_loaded_gives_the_pixels_the_data_pipeline_loads(tmp_path):
    root = generate(tmp_path, n=1, size=128, seed=5, progress=False)
    rng = random.Random(5)  # generate draws attrs, then the flower, from one stream
    attrs = random_attributes(rng)
    loaded, _ = decode_image(root / "images" / "image_00001.jpg", 64)
    assert torch.equal(torch.from_numpy(np.array(draw_as_loaded(attrs, 64, rng))).permute(2, 0, 1), loaded)


def test_reader_reads_held_out_real_flowers_at_98_percent(reader):
    assert set(reader.held_out) == set(quality.ATTRIBUTES)
    assert min(reader.held_out.values()) >= 0.98, reader.held_out
    combos = quality.all_combos()  # every combination once, drawn with a seed the reader never saw
    scores = quality.attribute_accuracy(reader, quality.draw_real(combos, 64, seed=77), combos)
    assert min(scores[a] for a in quality.ATTRIBUTES) >= 0.98, scores
    assert scores["all_four"] >= 0.95, scores


def test_attribute_accuracy_marks_the_wrong_attribute_wrong(reader):
    combos = quality.all_combos()[::9]
    images = quality.draw_real(combos, 64, seed=3)
    other_count = [{**a, "petals": 4 + (a["petals"] - 4 + 1) % 5} for a in combos]  # every caption names a wrong count
    scores = quality.attribute_accuracy(reader, images, other_count)
    assert scores["petal_count"] <= 0.05 and scores["all_four"] <= 0.05
    assert min(scores["petal_colour"], scores["centre_colour"], scores["petal_shape"]) >= 0.95
    assert scores["mean"] == pytest.approx(sum(scores[a] for a in quality.ATTRIBUTES) / 4)
    read = reader.read(images[:3])
    assert read["petal_count"] == [a["petals"] for a in combos[:3]] and read["petal_colour"] == [
        a["petal_colour"] for a in combos[:3]
    ]


def test_reader_is_cached_and_trains_nothing_the_second_time(reader, reader_cache, monkeypatch):
    monkeypatch.setattr(quality, "train_reader", lambda *a, **k: pytest.fail("trained again despite the cache"))
    again = quality.load_reader(64, reader_cache, progress=False)
    assert again.held_out == reader.held_out
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), reader.state_dict().values()))
    path = quality.reader_cache_path(64, reader_cache)
    assert path.parent == reader_cache / "quality" and path.is_file()
    assert quality.reader_cache_path(128, reader_cache) != path
    assert quality.reader_cache_path(64, reader_cache, quality.ReaderSettings(steps=401)) != path


def test_reader_refuses_images_of_another_size(reader):
    with pytest.raises(LabError, match="64, 64"):
        reader.read(torch.zeros(1, 3, 128, 128, dtype=torch.uint8))


def test_all_combos_are_the_270_the_renderer_draws():
    combos = {quality.combo(a) for a in quality.all_combos()}
    assert len(combos) == 270
    rng = random.Random(0)
    assert {quality.combo(random_attributes(rng)) for _ in range(3000)} == combos


def test_eval_captions_half_test_split_half_combinations_train_never_saw(synthetic_root):
    items = quality.eval_captions(synthetic_root, 11, seed=0)
    attributes = json.loads((synthetic_root / "attributes.json").read_text())
    names = [it.image_path.stem for it in load_captions(synthetic_root).items]
    train = {quality.combo(attributes[names[i]]) for i in split_indices(len(names), "train")}
    test = {quality.combo(attributes[names[i]]) for i in split_indices(len(names), "test")}
    assert [it.unseen for it in items] == [False] * 6 + [True] * 5
    assert all(quality.combo(it.attrs) in test for it in items[:6])
    assert all(quality.combo(it.attrs) not in train for it in items[6:])
    assert len({quality.combo(it.attrs) for it in items[6:]}) == 5  # distinct while the pool lasts
    for it in items:  # every caption names all four attributes
        a = it.attrs
        assert all(
            word in it.caption.split()
            for word in (COUNT_WORDS[a["petals"]], a["shape"], a["petal_colour"], a["centre_colour"])
        )
    assert quality.eval_captions(synthetic_root, 11, seed=0) == items
    assert quality.eval_captions(synthetic_root, 11, seed=1) != items


def test_eval_captions_need_attributes(tmp_path, synthetic_root):
    with pytest.raises(LabError, match="attributes.json"):
        quality.eval_captions(tmp_path, 4)


def test_diversity_ratio_is_one_for_real_drawings_and_zero_for_a_collapsed_generator():
    attrs, k = quality.all_combos()[::23], 4
    real = quality.draw_real([a for a in attrs for _ in range(k)], 64, seed=11).view(len(attrs), k, 3, 64, 64)
    scores = quality.diversity_scores(real, attrs, seed=12)
    assert 0.85 < scores["ratio"] < 1.15 and scores["real"] > 0.05, scores
    collapsed = real[:, :1].expand(-1, k, -1, -1, -1)
    assert quality.diversity_scores(collapsed, attrs, seed=12)["ratio"] == 0.0
    with pytest.raises(LabError, match="K >= 2"):
        quality.diversity(real[:, :1])
