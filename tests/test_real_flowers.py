"""Real Flowers, in miniature: the original archive's layout with its class files, photo augmentation, and the literature's protocol."""

import json
import math

import pytest
import torch

from lab.checkpoint import load_checkpoint
from lab.config import ExperimentConfig, apply
from lab.data.captions import load_captions
from lab.data.dataset import (
    FlowersDataset,
    build_dataset,
    split_indices,
    split_items,
    split_protocol,
)
from lab.errors import LabError
from lab.evaluation import literature
from lab.train.trainer import train
from tests.helpers import CLASSES, PER_CLASS, flowers_archive, run_lab


@pytest.fixture
def archive(tmp_path):
    """`cvpr2016_flowers/` one folder down, as in the real archive (`tests.helpers.flowers_archive`)."""
    return flowers_archive(tmp_path / "archive")


def _config(tiny_config, archive, **overrides):
    return tiny_config(**{"data_dir": str(archive.parent), "split": "train", **overrides})


def test_class_files_give_the_standard_split(archive):
    captions = load_captions(archive.parent)
    class_of = [int(it.image_path.stem[-5:]) for it in captions.items]  # image numbers run class by class
    train, test = split_items(captions, "train"), split_items(captions, "test")
    assert {(class_of[i] - 1) // PER_CLASS + 1 for i in train} == {1, 2, 3, 4}  # train + val classes
    assert {(class_of[i] - 1) // PER_CLASS + 1 for i in test} == {5, 6}  # unseen classes
    assert sorted(train + test) == split_items(captions, "all") == list(range(6 * PER_CLASS))
    assert (
        split_protocol(captions, "test")
        == "test: the 2 classes of testclasses.txt, unseen in training (standard class split)"
    )
    assert (
        split_protocol(captions, "train")
        == "train: the 4 classes of trainclasses.txt + valclasses.txt (standard class split)"
    )


def test_without_class_files_the_seeded_image_split_stays(archive):
    for file in CLASSES:
        (archive / file).unlink()
    captions = load_captions(archive.parent)
    assert captions.class_split is None
    assert split_items(captions, "test") == split_indices(6 * PER_CLASS, "test")
    assert split_protocol(captions, "test") == "test: a fixed seeded 10% of images (seed 1234; no class files)"


@pytest.mark.parametrize(
    "file, lines, message",
    [
        ("testclasses.txt", ["class_00005", "class_00099"], "names 'class_00099', which is not a folder in .*text_c10"),
        (
            "testclasses.txt",
            ["class_00005", "class_00006", "class_00003"],
            "class_00003 is listed for training .* and for testing",
        ),
        ("valclasses.txt", [], "class_00004 is in none of trainclasses.txt, valclasses.txt, testclasses.txt"),
        ("testclasses.txt", None, "has trainclasses.txt, valclasses.txt but no testclasses.txt"),
    ],
)
def test_wrong_class_files_are_one_line_errors(archive, file, lines, message):
    if lines is None:
        (archive / file).unlink()
    else:
        (archive / file).write_text("\n".join(lines) + "\n")
    with pytest.raises(LabError, match=message) as error:
        load_captions(archive.parent)
    assert "\n" not in str(error.value)


def test_build_dataset_follows_the_class_split_and_converts_odd_jpegs(tiny_config, archive, minilm):
    test_set, captions = build_dataset(_config(tiny_config, archive, split="test"), minilm, progress=False)
    assert len(test_set.images) == 2 * PER_CLASS and set(test_set.labels.tolist()) == {4, 5}
    train_set, captions = build_dataset(_config(tiny_config, archive), minilm, progress=False)
    assert len(train_set.images) == 4 * PER_CLASS
    assert captions.skipped == {"L image converted to RGB": 1, "CMYK image converted to RGB": 1}


def _crops(source: torch.Tensor, size: int) -> torch.Tensor:
    """Every size x size crop of every image in `source`, plain and mirrored: [K * offsets * 2, 3, size, size]."""
    span = source.shape[-1] - size + 1
    crops = [source[:, :, y : y + size, x : x + size] for y in range(span) for x in range(span)]
    crops = torch.cat(crops)
    return torch.cat([crops, crops.flip(-1)])


def test_augmentation_serves_random_mirrored_crops_of_every_image_wrong_ones_too():
    torch.manual_seed(0)
    source = torch.randint(0, 256, (6, 3, 10, 10), dtype=torch.uint8)
    images = source[:, :, 1:9, 1:9].clone()  # the full view is only used for its size here
    ds = FlowersDataset(
        images,
        torch.tensor([0, 0, 1, 1, 2, 2]),
        torch.zeros(6, 2),
        [str(i) for i in range(6)],
        torch.arange(6),
        crop_source=source,
    )
    batch = ds.__getitems__(list(range(6)) * 20)
    assert batch["image"].shape == batch["wrong_image"].shape == (120, 3, 8, 8)
    own = [_crops(source[i : i + 1], 8) for i in range(6)]
    for key in ("image", "wrong_image"):
        served = torch.round((batch[key] + 1) * 127.5).to(torch.uint8)
        for k, image in enumerate(served):
            matches = (_crops(source, 8) == image).flatten(1).all(1)
            assert matches.any(), f"{key} {k} is no crop of any cached image"
            if key == "image":
                assert (own[k % 6] == image).flatten(1).all(1).any(), "an image is not a crop of its own flower"
    served = torch.round((batch["image"] + 1) * 127.5).to(torch.uint8)
    views = {int(torch.nonzero((own[k % 6] == image).flatten(1).all(1))[0]) for k, image in enumerate(served)}
    assert views == set(range(18)), "not every offset, plain and mirrored, occurs in 120 draws"  # (17/18)**120 < 0.1%

    ds.generator.manual_seed(5)
    first = ds.__getitems__([0, 1, 2])
    ds.generator.manual_seed(5)
    again = ds.__getitems__([0, 1, 2])
    assert torch.equal(first["image"], again["image"]) and torch.equal(first["wrong_image"], again["wrong_image"])


def test_augmentation_is_on_for_photos_and_off_for_the_synthetic_set(tiny_config, archive, minilm):
    photos, _ = build_dataset(_config(tiny_config, archive), minilm, progress=False)
    assert photos.crop_source.shape == (len(photos.images), 3, 76, 76) and photos.images.shape[-1] == 64
    assert (
        build_dataset(_config(tiny_config, archive, augment_photos="off"), minilm, progress=False)[0].crop_source
        is None
    )
    assert build_dataset(tiny_config(), minilm, progress=False)[0].crop_source is None  # synthetic: attributes.json
    flips_only, _ = build_dataset(tiny_config(augment_photos="on", crop_scale=1.0), minilm, progress=False)
    assert flips_only.crop_source is flips_only.images
    with pytest.raises(LabError, match="crop_scale' must be from 1"):
        tiny_config(crop_scale=0.5)


def test_training_on_the_real_layout_resumes_bit_exact_with_augmentation(tiny_config, archive, tmp_path):
    straight = train(_config(tiny_config, archive, out_dir=str(tmp_path / "straight")), progress=False)
    halves = tmp_path / "halves"
    train(_config(tiny_config, archive, out_dir=str(halves), epochs=1), progress=False)
    train(_config(tiny_config, archive, out_dir=str(halves)), resume=halves, progress=False)
    a, b = load_checkpoint(straight), load_checkpoint(halves)
    for part in ("generator", "discriminator"):
        for name, value in a[part].items():
            assert torch.equal(value, b[part][name]), f"{part}.{name} differs after resume"
    unaugmented = train(
        _config(tiny_config, archive, out_dir=str(tmp_path / "plain"), augment_photos="off"), progress=False
    )
    weights = load_checkpoint(unaugmented)["generator"]
    assert any(not torch.equal(v, a["generator"][k]) for k, v in weights.items()), "augmentation changed nothing"


@pytest.fixture(scope="module")
def archive_run(tmp_path_factory):
    """A tiny run trained one epoch on the miniature archive's train classes."""
    folder = tmp_path_factory.mktemp("archive-run")
    archive = flowers_archive(folder / "archive")
    overrides = {"generator.width": 8, "discriminator.width": 8}
    config = apply(
        ExperimentConfig(),
        dict(
            data_dir=str(archive.parent),
            encoder="minilm",
            batch_size=8,
            epochs=1,
            split="train",
            cache_dir=str(folder / "cache"),
            out_dir=str(folder / "run"),
            threads=1,
            **overrides,
        ),
    )
    return train(config, progress=False)


def test_literature_inception_score_is_stackgans_formula():
    uniform = torch.full((20, 5), 0.2)
    assert literature.inception_score(uniform)["mean"] == pytest.approx(1.0)
    confident = torch.eye(5).repeat(4, 1)  # every split holds each of 5 classes, each predicted with certainty
    score = literature.inception_score(confident, splits=4)
    assert score["mean"] == pytest.approx(5.0) and score["std"] == pytest.approx(0.0) and score["splits"] == 4


def test_literature_reference_is_padded_with_flips_only_when_smaller():
    images = torch.randint(0, 256, (3, 3, 4, 4), dtype=torch.uint8)
    same, described = literature.padded_reference(images, 3)
    assert same is images and described == "the 3 test-split images"
    padded, described = literature.padded_reference(images, 4)
    assert torch.equal(padded[:3], images) and torch.equal(padded[3:], images.flip(-1))
    assert "horizontal flips" in described


def test_stackgan_protocol_on_the_miniature_archive(archive_run, tmp_path):
    """FID of test-class captions against the test split padded with flips; IS only from the given weights."""
    torch.set_num_threads(1)
    results = literature.evaluate(archive_run, n=20, batch_size=16, device="cpu", progress=False)
    protocol = results["protocol"]
    assert protocol["generated_images"] == 20 and protocol["real_images"] == 2 * 2 * PER_CLASS  # 8 test + 8 flips
    assert protocol["fid_reference"] == f"the {2 * PER_CLASS} test-split images and their horizontal flips"
    assert protocol["image_size"] == 64 and protocol["resolution"].startswith("64x64")
    assert protocol["split_rule"].startswith("test: the 2 classes of testclasses.txt")
    assert math.isfinite(results["fid"]) and results["fid"] > 0
    assert results["inception_score"] == {"unavailable": literature.NO_WEIGHTS}
    assert json.loads((archive_run / literature.EVAL_JSON).read_text())["fid"] == results["fid"]
    assert not (archive_run / "eval.json").exists()  # the lab's own scores are not overwritten

    class Classifier(torch.nn.Module):  # a stand-in for the flowers-fine-tuned Inception: 299px in, 3 logits out
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            assert x.shape[-2:] == (299, 299)
            return x.mean((2, 3)) * 10

    weights = tmp_path / "flowers_inception.pt"
    torch.jit.script(Classifier()).save(str(weights))
    scored = literature.evaluate(
        archive_run, n=20, batch_size=16, device="cpu", inception_weights=str(weights), progress=False
    )
    assert 1.0 <= scored["inception_score"]["mean"] <= 3.0 and scored["inception_score"]["splits"] == 10
    assert scored["fid"] == pytest.approx(results["fid"])  # same captions, same noise
    with pytest.raises(LabError, match="not a TorchScript module"):
        literature.evaluate(archive_run, n=4, inception_weights=str(archive_run / "config.json"), progress=False)


def test_stackgan_protocol_from_the_command_line(archive_run, tmp_path):
    result = run_lab("eval", "--run", str(archive_run), "--protocol", "stackgan", "--n", "6", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "stackgan protocol: 6 generated from test-class captions" in lines[0]
    assert [line for line in lines if "Inception Score" in line] == [f"  Inception Score  {literature.NO_WEIGHTS}"]
    assert any("StackGAN++ FID 48.68, IS 3.26" in line for line in lines)
    for args, message in [
        (["--inception-weights", str(tmp_path / "missing.pt")], "no such file"),
        (["--split", "train"], "drop --split train"),
    ]:
        bad = run_lab("eval", "--run", str(archive_run), "--protocol", "stackgan", "--n", "4", *args)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and message in bad.stderr, bad.stderr
