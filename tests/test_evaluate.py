"""Evaluation: the FID Inception wrapper, the alignment measures, and `lab eval` on a tiny trained run."""

import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchmetrics.image.fid import FrechetInceptionDistance

from lab.config import ExperimentConfig, apply
from lab.data.captions import load_captions
from lab.data.dataset import build_dataset, load_images
from lab.data.synthetic import generate
from lab.evaluation import alignment
from lab.evaluation.evaluate import evaluate
from lab.evaluation.fid import InceptionFeatures, extract_features, fid_kid, resize_tf1_bilinear
from lab.parts.build import load_encoder
from lab.train.trainer import train
from tests.helpers import run_lab


@pytest.fixture(autouse=True)
def one_thread():
    """Two busy cores run these small convolutions several times faster on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def inception():
    return InceptionFeatures()


@pytest.fixture(scope="module")
def flowers(tmp_path_factory):
    """80 synthetic flowers drawn at 128px and loaded at 64px, as a run sees them, with their petal colours."""
    root = generate(tmp_path_factory.mktemp("flowers80"), n=80, size=128, seed=3, progress=False)
    items = load_captions(root, "first").items
    images, _, _ = load_images([it.image_path for it in items], 64, tmp_path_factory.mktemp("cache"), progress=False)
    return root, images, [it.captions[0] for it in items]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, synthetic_root):
    folder = tmp_path_factory.mktemp("eval-run")
    config = apply(
        ExperimentConfig(),
        dict(
            data_dir=str(synthetic_root),
            encoder="minilm",
            batch_size=8,
            epochs=1,
            **{"generator.width": 8, "discriminator.width": 8},
            cache_dir=str(folder / "cache"),
            out_dir=str(folder / "run"),
            threads=1,
        ),
    )
    return train(config, progress=False), config


def test_resize_follows_tf1_bilinear_without_half_pixel_centres():
    image = torch.tensor([[0.0, 10.0], [20.0, 30.0]])[None, None]
    # TF1: source = dest * in/out = dest / 2, so rows/cols sample 0, 0.5, 1, 1.5 (clamped to 1)
    expected = torch.tensor([[0, 5, 10, 10], [10, 15, 20, 20], [20, 25, 30, 30], [20, 25, 30, 30]], dtype=torch.float)
    assert torch.allclose(resize_tf1_bilinear(image, 4)[0, 0], expected)
    assert resize_tf1_bilinear(torch.rand(2, 3, 64, 48), 299).shape == (2, 3, 299, 299)


def test_inception_wrapper_is_a_torchmetrics_feature_extractor(inception, flowers):
    _, images, _ = flowers
    real_a, real_b = images[:6], images[6:12]
    noise = torch.randint(0, 256, real_a.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))

    metric = FrechetInceptionDistance(feature=inception)
    metric.train()
    assert not inception.net.training, "metric.train() must not switch the Inception batch norms to training"
    metric.update(real_a, real=True)
    metric.update(noise, real=False)
    direct = float(metric.compute())

    features_a, features_b, features_noise = (
        extract_features(inception, x, batch_size=4, progress=False) for x in (real_a, real_b, noise)
    )
    assert features_a.shape == (6, 2048)
    to_noise, to_real = (
        fid_kid(features_a, features_noise, kid_subsets=10),
        fid_kid(features_a, features_b, kid_subsets=10),
    )
    assert to_noise["fid"] == pytest.approx(direct, rel=1e-3), "precomputed features must give torchmetrics' own FID"
    assert to_real["fid"] < to_noise["fid"] and to_real["kid_mean"] < to_noise["kid_mean"]
    with pytest.raises(ValueError, match="uint8"):
        inception(real_a.float())


def test_matcher_ranks_own_captions_first_far_above_chance(synthetic_root, minilm, tmp_path):
    config = apply(
        ExperimentConfig(),
        dict(data_dir=str(synthetic_root), encoder="minilm", captions="all", split="all", cache_dir=str(tmp_path)),
    )
    data, _ = build_dataset(config, minilm, progress=False)
    matcher = alignment.cached_matcher(
        data.images, data.embeddings, data.caption_image, minilm.cache_key, tmp_path, steps=150, progress=False
    )
    assert len(list((tmp_path / "matcher").glob("*.pt"))) == 1
    embeddings = dict(zip(data.texts, data.embeddings))
    images = data.images[data.caption_image]
    own, k = alignment.r_precision(matcher, images, data.texts, embeddings)
    shuffled, _ = alignment.r_precision(
        matcher, images[torch.randperm(len(images), generator=torch.Generator().manual_seed(0))], data.texts, embeddings
    )
    assert k == 100
    assert own > 0.1 and own > shuffled + 0.08, (own, shuffled)  # chance is 1 in 100


def test_eval_writes_scores_with_their_protocol_and_reuses_cached_real_features(tiny_run):
    run_dir, config = tiny_run
    results = evaluate(run_dir, n=8, split="test", batch_size=8, device="cpu", matcher_steps=30, progress=False)
    real_count = len(build_dataset(apply(config, {"split": "train"}), load_encoder(config), progress=False)[0].images)

    saved = json.loads((run_dir / "eval.json").read_text())
    assert saved == json.loads(json.dumps(results))
    assert (
        saved["protocol"]["generated_images"] == 8 and saved["protocol"]["real_images"] == real_count
    )  # FID against the train split
    assert saved["protocol"]["resize"] == "64x64 -> 299x299, TF1 bilinear"
    assert math.isfinite(saved["fid"]) and saved["fid"] > 0 and saved["kid_subset_size"] == min(8, real_count)
    score = saved["inception_score"]
    assert ("mean" in score and score["mean"] >= 1.0) or (
        "unavailable" in score and "mean" not in score and score["unavailable"]
    )
    accuracy = saved["attribute_accuracy"]
    assert set(accuracy) >= {"petal_colour", "centre_colour", "petal_count", "petal_shape", "mean", "all_four", "real"}
    assert all(accuracy["real"][a] >= 0.9 for a in ("petal_colour", "centre_colour", "petal_count", "petal_shape")), (
        accuracy["real"]
    )
    assert (
        all(0 <= accuracy[a] <= 1 for a in ("petal_colour", "mean", "all_four"))
        and accuracy["all_four"] <= accuracy["mean"]
    )
    assert "unseen_combinations" in accuracy and min(accuracy["reader_held_out"].values()) >= 0.98
    diversity = saved["diversity"]
    assert diversity["real"] > 0 and diversity["ratio"] == pytest.approx(diversity["generated"] / diversity["real"])
    assert 0 <= saved["r_precision"]["generated"] <= 1 and saved["r_precision"]["candidates"] >= 2
    assert Image.open(run_dir / "eval.png").width > 300
    assert all(0 <= saved[k] <= 1 for k in ("precision", "recall", "coverage")) and saved["density"] >= 0, saved
    assert (
        saved["memorisation_ratio"] > 0
        and "k = 5" in saved["protocol"]["prdc"]
        and "features" in saved["protocol"]["prdc"]
    )
    nearest = Image.open(run_dir / "nearest.png")  # 8 rows of (generated, gap, 5 neighbours) at 96px (64px shown 1x)
    assert nearest.width == 6 * 64 + 12 and nearest.height > 8 * 64

    cache = list((Path(config.cache_dir) / "fid").glob("train-*.pt"))
    assert len(cache) == 1
    again = evaluate(run_dir, n=8, split="test", batch_size=8, device="cpu", matcher_steps=30, progress=False)
    assert again["fid"] == results["fid"], "same seed, same run: same generated images and same FID"
    assert list((Path(config.cache_dir) / "fid").glob("train-*.pt")) == cache


def test_eval_cli_reports_user_mistakes_in_one_line(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    cases = (
        (["--run", str(tmp_path)], "is not a run directory"),
        (["--run", str(run_dir), "--n", "1"], "at least 2"),
        (["--run", str(run_dir), "--batch-size", "0"], "--batch-size must be at least 1"),
        (["--run", str(run_dir), "--device", "tpu9"], "unknown device"),
    )
    for args, message in cases:
        out = run_lab("eval", *args)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr
