"""Fidelity and coverage as separate numbers: precision, recall, density, coverage, and a memorisation check.

FID folds two questions into one number: do the generated images look real
(fidelity), and do they cover what the real images show (diversity)? A change
that buys one and sells the other can leave FID where it was. The k-nearest-
neighbour scores answer each question alone, on the same Inception features:

- precision (Kynkäänniemi et al. 2019): the share of generated images that fall
  inside the real manifold, estimated as the union of balls around every real
  image reaching to its k-th nearest real neighbour;
- recall: the share of real images inside the generated manifold (balls around
  the generated images); a collapsed generator covers almost nothing;
- density (Naeem et al. 2020): how many real balls each generated image falls
  in, divided by k; robust to outliers in the real set, and above 1 where the
  generated images crowd the densest real regions;
- coverage: the share of real images whose own ball holds at least one
  generated image; robust to outliers in the generated set.

For identical sets precision, recall and coverage are 1 and density is (k+1)/k
(each ball holds its centre and its k neighbours). Distances are Euclidean, as
in the reference implementations (`prdc`, torch-fidelity), computed in float64.

`memorisation_ratio`: the mean distance from each generated image to its
nearest training image, divided by the mean distance from each training image
to its nearest *other* training image. Near 1, G's images are as far from the
training set as training images are from each other; far below 1, G copies.
(The nearest one, not the mean of the k shown in `nearest.png`: an exact copy
of one training image is still far from the other k-1, and measured that way
a set of copies read 0.81.)
"""

from __future__ import annotations

import torch

K = 5
CHUNK = 1024  # rows of a distance matrix at a time: Flowers' train split is ~7,000 images


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distances [len(a), len(b)], `CHUNK` rows of `a` at a time, computed in float64 and kept as
    float32: the matrix-product form rounds d(a, b) and d(b, a) a few float64 ulps apart, which the float32
    rounding removes, so a point on the edge of a ball (its own k-th neighbour, in two sets that are the same)
    is counted the same from both sides."""
    return torch.cat([torch.cdist(a[i : i + CHUNK].double(), b.double()).float() for i in range(0, len(a), CHUNK)])


def knn_distances(features: torch.Tensor, k: int = K) -> torch.Tensor:
    """[N, k]: each row's distances to its k nearest *other* rows, nearest first (never the whole N x N matrix)."""
    if len(features) <= k:
        raise ValueError(f"nearest-neighbour scores with k={k} need more than {k} images, got {len(features)}")
    rows = [
        _distances(features[i : i + CHUNK], features).topk(k + 1, dim=1, largest=False).values[:, 1:]
        for i in range(0, len(features), CHUNK)
    ]
    return torch.cat(rows)  # the first of each row's k + 1 was the row itself, at 0


def nearest(queries: torch.Tensor, pool: torch.Tensor, k: int = K) -> tuple[torch.Tensor, torch.Tensor]:
    """(distances [Q, k], indices [Q, k]) of each query's k nearest rows of `pool`, nearest first."""
    found = _distances(queries, pool).topk(k, dim=1, largest=False)
    return found.values, found.indices


def scores(real: torch.Tensor, fake: torch.Tensor, k: int = K) -> dict[str, float]:
    """Precision, recall, density, coverage and the memorisation ratio of `fake` against `real` features
    ([N, D] and [M, D]), from one generated-to-real distance matrix and each set's k-NN distances."""
    real_knn = knn_distances(real, k)  # [N, k]: its last column is each real image's ball
    fake_radii = knn_distances(fake, k)[:, -1]  # [M]
    cross = _distances(fake, real)  # [M, N]: generated j to real i
    inside_real = cross <= real_knn[:, -1]
    return {
        "precision": inside_real.any(dim=1).double().mean().item(),
        "recall": (cross <= fake_radii[:, None]).any(dim=0).double().mean().item(),
        "density": inside_real.double().sum().item() / (k * len(fake)),
        "coverage": inside_real.any(dim=0).double().mean().item(),
        "memorisation_ratio": cross.min(dim=1).values.mean().item() / real_knn[:, 0].mean().item(),
    }
