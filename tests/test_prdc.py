"""Precision, recall, density, coverage and the memorisation ratio on feature sets whose answers are known."""

import numpy as np
import pytest
import torch

from lab.evaluation.evaluate import manifold_scores
from lab.evaluation.prdc import K, knn_distances, nearest, scores

FOUR = ("precision", "recall", "density", "coverage")


def prdc(real: torch.Tensor, fake: torch.Tensor) -> dict:
    return {k: v for k, v in scores(real, fake).items() if k in FOUR}


def memorisation_ratio(train: torch.Tensor, fake: torch.Tensor) -> float:
    return scores(train, fake)["memorisation_ratio"]


def _numpy_prdc(real: np.ndarray, fake: np.ndarray, k: int) -> dict:
    """The definitions of Kynkäänniemi et al. 2019 and Naeem et al. 2020, written out loop by loop."""

    def radii(x):
        return np.array([np.sort(np.linalg.norm(x - row, axis=1))[k] for row in x])  # [0] is the row itself

    r_real, r_fake = radii(real), radii(fake)
    d = np.linalg.norm(fake[:, None, :] - real[None, :, :], axis=2)  # [M, N]
    return {
        "precision": np.mean([any(d[j, i] <= r_real[i] for i in range(len(real))) for j in range(len(fake))]),
        "recall": np.mean([any(d[j, i] <= r_fake[j] for j in range(len(fake))) for i in range(len(real))]),
        "density": sum(d[j, i] <= r_real[i] for j in range(len(fake)) for i in range(len(real))) / (k * len(fake)),
        "coverage": np.mean([d[:, i].min() <= r_real[i] for i in range(len(real))]),
    }


def test_matches_a_direct_computation_of_the_definitions():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(60, 8, generator=g), torch.randn(45, 8, generator=g) * 0.8 + 0.5
    got, expected = prdc(real, fake), _numpy_prdc(real.double().numpy(), fake.double().numpy(), K)
    assert got == pytest.approx(expected, abs=1e-12)
    assert 0 < got["precision"] < 1 and 0 < got["recall"] < 1 and 0 < got["coverage"] < 1, (
        got
    )  # a case that tells things apart


def test_identical_sets_score_one():
    real = torch.randn(50, 16, generator=torch.Generator().manual_seed(1))
    got = prdc(real, real.clone())
    assert got["precision"] == got["recall"] == got["coverage"] == 1.0
    assert got["density"] == pytest.approx((K + 1) / K)  # every ball holds its centre and its k neighbours


def test_a_set_collapsed_onto_one_real_image_is_precise_but_recalls_nothing():
    real = torch.randn(50, 16, generator=torch.Generator().manual_seed(2))
    got = prdc(real, real[3].repeat(40, 1))
    assert got["precision"] == 1.0
    assert got["recall"] == pytest.approx(1 / 50)  # only the copied image lies inside the fakes' (empty) balls
    assert got["coverage"] <= (K + 1) / 50  # the copied image and at most the few whose balls reach it


def test_a_set_far_from_the_real_one_scores_zero():
    g = torch.Generator().manual_seed(3)
    got = prdc(torch.randn(50, 16, generator=g), torch.randn(40, 16, generator=g) + 100)
    assert got == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_more_spread_fakes_move_recall_and_coverage_not_precision_alone():
    """The trade-off the scores exist for: a generator that covers half the real modes is as precise, recalls less."""
    g = torch.Generator().manual_seed(4)
    centres = torch.randn(8, 16, generator=g) * 10

    def draw(modes, n):
        return centres[torch.arange(n) % modes] + torch.randn(n, 16, generator=g)

    real, all_modes, half_modes = draw(8, 160), draw(8, 160), draw(4, 160)
    full, half = prdc(real, all_modes), prdc(real, half_modes)
    assert half["precision"] == pytest.approx(full["precision"], abs=0.1)
    assert half["recall"] < full["recall"] - 0.3 and half["coverage"] < full["coverage"] - 0.3, (full, half)


def test_nearest_and_memorisation_ratio():
    g = torch.Generator().manual_seed(5)
    train = torch.randn(80, 16, generator=g)
    distances, indices = nearest(train[[7, 30]] + 1e-3, train)
    assert indices[:, 0].tolist() == [7, 30] and distances.shape == (2, K) and bool((distances.diff(dim=1) >= 0).all())
    assert torch.equal(
        knn_distances(train)[:, 0], nearest(train, train, 2)[0][:, 1]
    )  # itself excluded, then the nearest other
    assert memorisation_ratio(train, train[:40] + 1e-3) < 0.01, "copies of training images must read as memorised"
    assert memorisation_ratio(train, torch.randn(80, 16, generator=g)) == pytest.approx(1.0, abs=0.2), (
        "fresh draws from the same distribution"
    )


def test_too_few_images_are_reported_as_unavailable_not_guessed():
    assert set(manifold_scores(torch.randn(50, 4), torch.randn(K, 4)).values()) == {None}
    with pytest.raises(ValueError, match="need more than"):
        knn_distances(torch.randn(K, 4))
