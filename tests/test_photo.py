"""The photo-style synthetic flowers: one caption, many right pictures, drawn fast enough for tests."""

from __future__ import annotations

import json
import math
import random
import time

import numpy as np
import pytest
import torch

from lab.data import photo
from lab.data.dataset import decode_image
from lab.data.synthetic import (
    CENTRE_COLOURS,
    COUNT_WORDS,
    PETAL_COLOURS,
    data_style,
    draw_as_loaded,
    full_caption,
    generate,
    get_style,
    random_attributes,
)
from lab.errors import LabError
from lab.evaluation import bloom_reader, quality
from lab.evaluation.bloom_reader import BloomReader
from tests.helpers import run_lab

SCENE_KEYS = set(photo.random_scene(random.Random(0)))
COLOUR_WORDS = set(PETAL_COLOURS) | set(CENTRE_COLOURS) | {w for ws in photo.PETAL_COLOUR_WORDS.values() for w in ws}


@pytest.fixture(scope="module")
def photo_root(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("photo"), n=60, size=64, seed=4, progress=False, style="photo")


def test_photo_set_has_images_captions_attributes_and_scenes(photo_root):
    attributes = json.loads((photo_root / "attributes.json").read_text())
    assert len(attributes) == 60 and len(list((photo_root / "images").glob("*.jpg"))) == 60
    assert data_style(photo_root) == "photo"
    for name, entry in attributes.items():
        assert set(entry) == {"petal_colour", "centre_colour", "petals", "shape", "scene"}
        assert set(entry["scene"]) == SCENE_KEYS
        assert photo.MIN_BLOOM <= entry["scene"]["radius"] <= photo.MAX_BLOOM
        assert len((photo_root / "captions" / f"{name}.txt").read_text().splitlines()) == 10
    scenes = [e["scene"] for e in attributes.values()]
    assert {s["background"] for s in scenes} == set(photo.BACKGROUNDS)
    assert max(s["companions"] for s in scenes) > 0 and min(s["companions"] for s in scenes) == 0
    assert max(s["radius"] for s in scenes) > 2 * min(s["radius"] for s in scenes)  # small blooms and close-ups
    assert len({s["jpeg_quality"] for s in scenes}) > 5


def test_photo_set_is_deterministic_by_seed(photo_root, tmp_path):
    again = generate(tmp_path / "again", n=60, size=64, seed=4, progress=False, style="photo")
    other = generate(tmp_path / "other", n=5, size=64, seed=5, progress=False, style="photo")
    for sub in ("images/image_00007.jpg", "captions/image_00007.txt", "attributes.json"):
        assert (again / sub).read_bytes() == (photo_root / sub).read_bytes(), sub
    assert (other / "images/image_00001.jpg").read_bytes() != (photo_root / "images/image_00001.jpg").read_bytes()


def test_captions_are_true_varied_and_use_synonyms(photo_root):
    attributes = json.loads((photo_root / "attributes.json").read_text())
    captions = {n: (photo_root / "captions" / f"{n}.txt").read_text().splitlines() for n in attributes}
    every = [c for lines in captions.values() for c in lines]
    assert all(len(set(lines)) == 10 for lines in captions.values())
    assert len(set(every)) > 0.75 * len(every)  # short ones ("a red flower with round petals.") recur, as in Reed's
    words = set(" ".join(every).replace(".", " ").replace(",", " ").split())
    assert {"center", "middle", "stamen", "pistil"} <= words and {"pointy", "rounded"} <= words
    named = []
    for name, lines in captions.items():
        a = attributes[name]
        colours = photo.PETAL_COLOUR_WORDS.get(a["petal_colour"], (a["petal_colour"],))
        for caption in lines:
            tokens = set(caption.replace(".", " ").replace(",", " ").split())
            other_colours = {c for c in COLOUR_WORDS if c not in (*colours, a["centre_colour"])}
            assert not tokens & other_colours, (caption, a)  # no colour the flower does not have
            assert not tokens & (set(COUNT_WORDS.values()) - {COUNT_WORDS[a["petals"]]}), (caption, a)
            named.append(sum(bool(tokens & set(group)) for group in _attribute_words(a)))
    assert min(named) == 1 and max(named) == 4  # some captions name one attribute, some all four
    assert 0.2 < sum(n == 4 for n in named) / len(named) < 0.6


def _attribute_words(a: dict) -> list[tuple[str, ...]]:
    return [
        photo.PETAL_COLOUR_WORDS.get(a["petal_colour"], (a["petal_colour"],)),
        (a["centre_colour"],),
        (COUNT_WORDS[a["petals"]],),
        photo.SHAPE_WORDS[a["shape"]],
    ]


def test_evaluation_caption_names_all_four_in_plain_words():
    a = {"petal_colour": "purple", "centre_colour": "black", "petals": 6, "shape": "pointed"}
    assert full_caption(a, "photo") == "this flower has six pointed purple petals and a black center."
    assert full_caption(a) == full_caption(a, "photo")  # one evaluation sentence for both styles


def test_draw_as_loaded_gives_the_pixels_the_data_pipeline_loads(tmp_path):
    root = generate(tmp_path, n=1, size=128, seed=9, progress=False, style="photo")
    rng = random.Random(9)
    attrs = random_attributes(rng)
    loaded, _ = decode_image(root / "images" / "image_00001.jpg", 64)
    drawn = torch.from_numpy(np.array(draw_as_loaded(attrs, 64, rng, style="photo"))).permute(2, 0, 1)
    assert torch.equal(drawn, loaded)


def test_the_same_caption_gets_different_pictures():
    rng = random.Random(0)
    attrs = random_attributes(rng)
    images = [np.asarray(draw_as_loaded(attrs, 64, rng, style="photo"), dtype=float) for _ in range(8)]
    distances = [np.sqrt(((a - b) ** 2).mean()) / 255 for i, a in enumerate(images) for b in images[i + 1 :]]
    assert min(distances) > 0.05, distances


def test_photo_style_draws_fast_enough_for_tests():
    """Not a timing assertion (shared CPUs vary): it prints both styles' rates, measured side by side, and
    their ratio; the classic set draws ~170 images/s on an idle core, so a ratio >= 0.6 means >= 100 images/s."""
    rates = {}
    for name in ("classic", "photo"):
        style, rng = get_style(name), random.Random(1)
        start = time.perf_counter()
        for _ in range(100):
            style.draw(random_attributes(rng), 128, rng)
        rates[name] = 100 / (time.perf_counter() - start)
    print(
        f"\ndrawing at 128px, one process: photo {rates['photo']:.0f} images/s, classic {rates['classic']:.0f}"
        f" (photo / classic {rates['photo'] / rates['classic']:.2f})"
    )
    assert min(rates.values()) > 0


def test_cli_draws_the_photo_style_and_refuses_an_unknown_one(tmp_path):
    out = run_lab("data", "synthetic", str(tmp_path / "p"), "--style", "photo", "--n", "3", "--size", "32")
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "p" / "synthetic.json").read_text()) == {
        "style": "photo",
        "images": 3,
        "size": 32,
        "seed": 0,
    }
    with pytest.raises(LabError, match="unknown synthetic style 'oil'"):
        generate(tmp_path / "q", n=1, style="oil", progress=False)
    assert not (tmp_path / "q").exists()  # refused before anything is written


def test_data_style_of_older_sets_is_classic_and_a_damaged_manifest_is_one_line(tmp_path, synthetic_root):
    assert data_style(synthetic_root) == "classic"
    assert data_style(tmp_path) == "classic"  # drawn before styles: no synthetic.json
    (tmp_path / "synthetic.json").write_text("[1, 2]")
    with pytest.raises(LabError, match="not a JSON object"):
        data_style(tmp_path)


# --- the photo-style attribute reader ------------------------------------------------------------------

TINY_READER = quality.ReaderSettings(style="photo", train_images=48, held_out_images=16, steps=3, batch_size=16)


def test_each_style_has_its_own_reader_and_cache_key(tmp_path):
    assert quality.reader_settings("classic") == quality.ReaderSettings()
    photo_settings = quality.reader_settings("photo")
    assert photo_settings.style == "photo" and photo_settings.train_images > quality.ReaderSettings().train_images
    classic_path = quality.reader_cache_path(64, tmp_path)
    photo_path = quality.reader_cache_path(64, tmp_path, photo_settings)
    assert photo_path != classic_path and photo_path.name.startswith("reader-photo-64px-")
    assert isinstance(quality.new_reader(64, photo_settings), BloomReader)
    with pytest.raises(LabError, match="unknown synthetic style"):
        quality.reader_settings("oil")


def test_bloom_reader_crops_around_the_bloom_it_is_given():
    reader = BloomReader(64)
    x = torch.full((1, 3, 64, 64), -1.0)
    x[:, 0, 40:56, 8:24] = 1.0  # a red square centred at (16, 48) px: x 0.25, y 0.75, half-side 8 px
    boxes = torch.tensor([[0.25, 0.75, math.log(8 / 64 / bloom_reader.CROP)]])  # crop = the square exactly
    crop = reader.crop(x, boxes)
    assert crop.shape == (1, 3, quality.READ_SIZE, quality.READ_SIZE)
    assert crop[0, 0, 2:-2, 2:-2].min() > 0.9 and crop[0, 1].max() < -0.9  # all red, nothing else
    outside = reader.crop(x, torch.tensor([[0.0, 0.0, math.log(0.5)]]))  # half of it beyond the frame
    assert outside[0, :, :8, :8].abs().max() == 0  # reads as grey


def test_photo_reader_trains_reads_and_is_cached(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    reader = quality.load_reader(64, tmp_path, TINY_READER, progress=False)
    assert isinstance(reader, BloomReader) and set(reader.held_out) == set(quality.ATTRIBUTES)
    monkeypatch.setattr(quality, "train_reader", lambda *a, **k: pytest.fail("trained again despite the cache"))
    again = quality.load_reader(64, tmp_path, TINY_READER, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), reader.state_dict().values()))
    attrs = quality.all_combos()[:5]
    read = again.read(quality.draw_real(attrs, 64, seed=3, style="photo"))
    assert set(read) == set(quality.ATTRIBUTES) and all(len(v) == 5 for v in read.values())


def test_eval_of_a_run_trained_on_photos_reads_with_the_photo_reader(tmp_path, monkeypatch, minilm):
    from lab.config import ExperimentConfig, apply
    from lab.evaluation.evaluate import evaluate
    from lab.train.trainer import train

    torch.set_num_threads(1)
    root = generate(tmp_path / "photos", n=24, size=64, seed=2, progress=False, style="photo")
    monkeypatch.setenv("T2I_LAB_HOME", str(tmp_path / "home"))  # the tiny reader below stays out of the real cache
    monkeypatch.setattr(
        quality, "reader_settings", lambda style: TINY_READER if style == "photo" else pytest.fail(style)
    )
    config = apply(
        ExperimentConfig(),
        {
            "data_dir": str(root),
            "encoder": "minilm",
            "generator.width": 8,
            "discriminator.width": 8,
            "batch_size": 8,
            "epochs": 1,
            "cache_dir": str(tmp_path / "cache"),
            "out_dir": str(tmp_path / "run"),
            "threads": 1,
        },
    )
    results = evaluate(train(config, progress=False), n=8, batch_size=8, device="cpu", matcher_steps=5, progress=False)
    accuracy = results["attribute_accuracy"]
    assert accuracy["reader_style"] == "photo" and accuracy["reader_held_out"].keys() == set(quality.ATTRIBUTES)
    assert list((tmp_path / "home" / "quality").glob("reader-photo-64px-*.pt"))
    assert results["diversity"]["real"] > 0
